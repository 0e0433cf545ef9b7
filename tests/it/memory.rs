//! Flat memory: past a budget (`--spill-after-bytes`) the cohort's rows go to
//! a temporary file and Table 1 and completeness are counted as rows come;
//! every output is byte-identical to a run that keeps everything in memory,
//! for any thread count, and so are `imnm export` and `imnm merge`.

use std::path::Path;

use imnm_fhir::bench_data::{self, Spec};

use crate::support::{dir_files, imnm};

fn run(args: &[&str], cwd: &Path) {
    let o = imnm(args, cwd);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "imnm {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The outputs of `imnm cohort` over `inputs` with `extra` arguments.
fn cohort(inputs: &[String], out: &Path, extra: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut args = vec!["cohort", "--out", out.to_str().unwrap(), "--format", "both"];
    for i in inputs {
        args.extend(["--input", i.as_str()]);
    }
    args.extend(extra);
    run(&args, out.parent().unwrap());
    dir_files(out)
}

/// Every file of `b` equal to `a`'s, named in the failure.
fn assert_same(a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)], what: &str) {
    let names = |s: &[(String, Vec<u8>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "{what}");
    for ((name, x), (_, y)) in a.iter().zip(b) {
        assert!(x == y, "{name} differs {what}");
    }
}

/// A tiny budget (nothing, or a few rows, in memory) against none, one and two threads.
const BUDGETS: [(&str, &str); 3] = [("1", "0"), ("2", "0"), ("2", "3000")];

#[test]
fn a_tiny_budget_writes_the_same_cohort_files_on_a_registry_input_and_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, demo) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("demo"));
    bench_data::write_bulk_dir(&Spec::registry(8_000, 10), &a, false).unwrap();
    bench_data::write_bulk_dir(
        &Spec {
            seed: 9,
            ..Spec::registry(4_000, 50)
        },
        &b,
        false,
    )
    .unwrap();
    imnm_fhir::demo::generate::write_demo(&demo).unwrap();
    let inputs = [
        vec![a.display().to_string()],
        vec![format!("a={}", a.display()), format!("b={}", b.display())],
        vec![demo.join("bundle.json").display().to_string()],
    ];
    for (k, input) in inputs.iter().enumerate() {
        let whole = cohort(input, &tmp.path().join(format!("whole-{k}")), &["--threads", "1"]);
        let rows = whole
            .iter()
            .find(|(n, _)| n == "cohort.csv")
            .unwrap()
            .1
            .split(|b| *b == b'\n')
            .count();
        assert!(rows > 5, "input {k}: {rows} lines of cohort.csv");
        for (threads, budget) in BUDGETS {
            let out = tmp.path().join(format!("t{threads}-b{budget}-{k}"));
            let args = ["--threads", threads, "--spill-after-bytes", budget];
            assert_same(&whole, &cohort(input, &out, &args), &format!("input {k} with {args:?}"));
        }
    }
}
