//! A registry across hospitals, from files: `--input SITE=PATH` keeps two
//! sites' data apart even when they use the same resource ids, and every
//! output names the site (cohort.csv, candidates, provenance, issues,
//! sources, completeness, Table 1 pooled and per site).

use serde_json::Value;

use crate::cli::{assert_seed_figures, table1};
use crate::support::{imnm, read_ndjson, root};

#[test]
fn two_sites_with_the_same_ids_stay_two_sets_of_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = root().join("examples/demo-cohort/bundle.json");
    let (a, b) = (format!("a={}", demo.display()), format!("b={}", demo.display()));
    let o = imnm(&["cohort", "--input", &a, "--input", &b, "--out", "out"], tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("out");
    // cohort.csv: 20 cases keyed by (site, patient_id), the same ids at both sites.
    let cohort = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    let rows: Vec<&str> = cohort.lines().skip(1).collect();
    assert!(cohort.starts_with("site,patient_id,"));
    assert_eq!(rows.len(), 20);
    let ids = |site: &str| {
        let mut v: Vec<&str> = rows
            .iter()
            .filter(|r| r.starts_with(&format!("{site},")))
            .map(|r| r.split(',').nth(1).unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids("a").len(), 10);
    assert_eq!(ids("a"), ids("b"));
    let candidates = std::fs::read_to_string(out.join("candidates.csv")).unwrap();
    assert!(candidates.starts_with("site,patient_id,"));
    assert_eq!(candidates.lines().filter(|l| l.starts_with("b,")).count(), 2);
    // Provenance and sources name the site; each site's sources are its own.
    let prov = read_ndjson(&out.join("provenance.ndjson"));
    assert!(prov.iter().all(|p| p["site"] == "a" || p["site"] == "b"));
    assert_eq!(prov.iter().filter(|p| p["site"] == "a").count() * 2, prov.len());
    let sources = read_ndjson(&out.join("sources.ndjson"));
    for site in ["a", "b"] {
        let held: Vec<&Value> = sources.iter().filter(|s| s["site"] == site).collect();
        assert!(held.len() > 50, "{site}: {}", held.len());
        assert!(held.iter().all(|s| s["resource"]["resourceType"].is_string()));
    }
    // Table 1: the pooled figures are twice the seed's, each site's are the seed's.
    let t1 = table1(&out);
    let of = |site: &str| -> Vec<Value> { t1.iter().filter(|r| r["site"] == site).cloned().collect() };
    assert_seed_figures(&of("a"));
    assert_seed_figures(&of("b"));
    let pooled_n = of("all").iter().find(|r| r["variable"] == "n").unwrap()["n"].clone();
    assert_eq!(pooled_n, 20);
    let md = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(
        md.starts_with("| Characteristic | All sites (n=20) | a (n=10) | b (n=10) |"),
        "{md}"
    );
    assert!(
        md.contains("| Anti-HMGCR: positive | 8 (40%) | 4 (40%) | 4 (40%) |"),
        "{md}"
    );
    // Completeness pooled and per site.
    let comp = std::fs::read_to_string(out.join("completeness.csv")).unwrap();
    assert!(
        comp.lines().any(|l| l.starts_with("b,ck_peak_u_per_l,all,10,10,")),
        "{comp}"
    );
}

#[test]
fn a_path_is_the_local_sites_and_issues_name_their_site() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x.ndjson"), "{not json\n").unwrap();
    let demo = root().join("examples/demo-cohort/bundle.json");
    let o = imnm(
        &[
            "cohort",
            "--input",
            demo.to_str().unwrap(),
            "--input",
            "c=x.ndjson",
            "--out",
            "out",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let issues = read_ndjson(&tmp.path().join("out/issues.ndjson"));
    let bad = issues.iter().find(|i| i["code"] == "malformed-json").unwrap();
    assert_eq!(bad["site"], "c");
    let cohort = std::fs::read_to_string(tmp.path().join("out/cohort.csv")).unwrap();
    assert!(cohort.lines().skip(1).all(|l| l.starts_with("local,")));
}
