//! Scan benchmark: `imnm cohort` against per-line parse baselines on the same bytes.
//!
//! ```sh
//! cargo bench --bench scan                                   # 10k and 100k resources
//! IMNM_BENCH_SIZES=10000,100000,1000000 cargo bench --bench scan
//! IMNM_BENCH_BIG=/data/big.ndjson cargo bench --bench scan    # adds a run on a big file (see BENCHMARKS.md)
//! IMNM_BENCH_REPEAT=5 cargo bench --bench scan               # runs per figure (median kept; default 3)
//! IMNM_BENCH_REGISTRY=10,100 IMNM_BENCH_REGISTRY_SIZE=150000 cargo bench --bench scan
//! ```
//!
//! Besides hospital-wide exports (few resources relevant), **registry-shaped**
//! inputs (`bench_data::Spec::registry`: every patient a case, ~150 results
//! each, `IMNM_BENCH_REGISTRY` percent of them CK or antibodies; default
//! 10,50,100 at `IMNM_BENCH_REGISTRY_SIZE` = 150,000 resources; `none` to
//! skip) are measured as NDJSON, a Bulk folder, a Bundle and a synced store
//! (`imnm cohort --store`), each against Python `json.loads` of the same lines.
//!
//! Baselines, each reading the file line by line: Python `json.loads` (when
//! `python3` is on PATH), `serde_json::Value`, and the narrow borrowed struct
//! `imnm` peeks with (`fhir::peek::Peek`: the parse limit). `imnm cohort` runs
//! as a subprocess (release build of this checkout); its peak RSS comes from
//! `wait4`. Every figure of one report is measured in the same run; the methods
//! compared on one input run round-robin (one run of each per round), so a slow
//! spell of the machine hits them alike. "2 threads ÷ 1" is the median of the
//! two runs' ratios round by round (the table's seconds are each method's
//! median), which a drift of the machine's speed within the run moves least.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use imnm_fhir::bench_data::{self, Spec};

// The allocator the `imnm` binary uses, so the in-process baselines allocate as it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Figure {
    input: String,
    method: String,
    resources: u64,
    bytes: u64,
    secs: f64,
    rss_mb: Option<f64>,
    /// Each round's seconds, in round order (set by [`median`]).
    rounds: Vec<f64>,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.resources as f64 / self.secs
    }
}

/// How many times faster `fast` ran than `slow`: the median of the ratios of
/// their runs round by round when both ran in the same rounds (a slow spell of
/// the machine then hits both sides of each ratio), else the ratio of their medians.
fn paired(slow: &Figure, fast: &Figure) -> f64 {
    let n = slow.rounds.len();
    if n == 0 || n != fast.rounds.len() {
        return slow.secs / fast.secs;
    }
    let mut ratios: Vec<f64> = slow.rounds.iter().zip(&fast.rounds).map(|(s, f)| s / f).collect();
    ratios.sort_by(f64::total_cmp);
    ratios[n / 2]
}

fn main() {
    let sizes: Vec<u64> = std::env::var("IMNM_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let repeat: usize = std::env::var("IMNM_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    println!("# imnm scan benchmark\n");
    println!("{}", machine());
    let mut figures = Vec::new();
    for &n in &sizes {
        let dir = data.join(n.to_string());
        let resources = prepare(&Spec::new(n), &dir);
        figures.extend(run_size(&format!("{n}"), &dir, resources, repeat));
    }
    let (pcts, reg_size) = registry_inputs();
    for pct in pcts {
        let dir = data.join(format!("reg{pct}-{reg_size}"));
        let resources = prepare(&Spec::registry(reg_size, pct), &dir);
        let label = format!("reg{pct}% {reg_size}");
        figures.extend(run_size(&label, &dir, resources, repeat));
        figures.extend(store_figures(&format!("reg{pct}% store"), &dir, resources, repeat));
    }
    if let Ok(big) = std::env::var("IMNM_BENCH_BIG") {
        let path = PathBuf::from(big);
        let resources = count_lines(&path);
        let label = format!("big {}", path.display());
        let out = data.join("out-big");
        let mut methods: Vec<Method<'_>> = Vec::new();
        for threads in ["1", "2"] {
            let (label, path, out) = (&label, &path, &out);
            methods.push((
                format!("imnm cohort -t{threads}"),
                Box::new(move || cohort(label, &[path], threads, resources, out)),
            ));
        }
        methods.push((
            "narrow serde struct".into(),
            Box::new(|| in_process(&label, &path, resources, narrow)),
        ));
        figures.extend(interleaved(repeat.min(2), &methods));
    }
    report(&figures);
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    format!("machine: {cpu}, {cores} cores; load average before the run: {load}\n")
}

/// The registry-shaped inputs asked for: (percentages relevant, resources).
fn registry_inputs() -> (Vec<u8>, u64) {
    let pcts = std::env::var("IMNM_BENCH_REGISTRY").unwrap_or_else(|_| "10,50,100".into());
    let size = std::env::var("IMNM_BENCH_REGISTRY_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150_000);
    (pcts.split(',').filter_map(|s| s.trim().parse().ok()).collect(), size)
}

/// `imnm cohort --store` on one and two threads over the synced store of a registry input.
fn store_figures(label: &str, dir: &Path, resources: u64, repeat: usize) -> Vec<Figure> {
    let (store, out) = (dir.join("store.db"), dir.join("out"));
    let methods: Vec<Method<'_>> = ["1", "2"]
        .into_iter()
        .map(|threads| -> Method<'_> {
            let (store, out) = (store.clone(), out.clone());
            (
                format!("imnm cohort -t{threads}"),
                Box::new(move || {
                    let _ = std::fs::remove_dir_all(&out);
                    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imnm"));
                    cmd.args(["cohort", "--no-publish", "--threads", threads, "--store"])
                        .arg(&store)
                        .arg("--out")
                        .arg(&out);
                    let (secs, rss) = timed(cmd);
                    Figure {
                        input: label.into(),
                        method: String::new(),
                        resources,
                        bytes: file_bytes(&[&store]),
                        secs,
                        rss_mb: Some(rss),
                        rounds: Vec::new(),
                    }
                }),
            )
        })
        .collect();
    interleaved(repeat, &methods)
}

/// A synced store of `spec`'s resources (site `reg`), as `imnm sync` writes pages.
fn write_store(spec: &Spec, path: &Path) {
    let mut store = imnm_fhir::store::Store::open(path).expect("bench store");
    let mut page: Vec<serde_json::Value> = Vec::with_capacity(1000);
    let mut bad = 0;
    bench_data::for_each(spec, |_, json| match serde_json::from_str(json) {
        Ok(v) => {
            page.push(v);
            if page.len() == 1000 {
                store.write_page("reg", &page).expect("store page");
                page.clear();
            }
        }
        Err(_) => bad += 1,
    });
    store.write_page("reg", &page).expect("store page");
    assert_eq!(bad, 0, "a registry input has no faults");
}

/// Writes the inputs of one spec once (kept under target/tmp between runs).
fn prepare(spec: &Spec, dir: &Path) -> u64 {
    let stamp = dir.join("stamp");
    let spec = *spec;
    let want = format!("bench_data v2 {} {:?}", spec.resources, spec.registry);
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("bench data folder");
        bench_data::write_one_ndjson(&spec, &dir.join("all.ndjson"), None).expect("write all.ndjson");
        bench_data::write_bulk_dir(&spec, &dir.join("bulk"), false).expect("write bulk/");
        bench_data::write_bulk_dir(&spec, &dir.join("bulk-gz"), true).expect("write bulk-gz/");
        bench_data::write_bundle(&spec, &dir.join("bundle.json")).expect("write bundle.json");
        if spec.registry.is_some() {
            write_store(&spec, &dir.join("store.db"));
        }
        std::fs::write(&stamp, want).expect("stamp");
    }
    count_lines(&dir.join("all.ndjson"))
}

fn count_lines(path: &Path) -> u64 {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::with_capacity(1 << 20, f).split(b'\n').count() as u64
}

/// A named measurement.
type Method<'a> = (String, Box<dyn Fn() -> Figure + 'a>);

fn run_size(label: &str, dir: &Path, resources: u64, repeat: usize) -> Vec<Figure> {
    let all = dir.join("all.ndjson");
    let out = dir.join("out");
    let label = format!("{label} all.ndjson");
    let (all, out, label) = (&all, &out, &label);
    let mut one_file: Vec<Method<'_>> = Vec::new();
    if python_present() {
        one_file.push(("python json.loads".into(), Box::new(|| python(label, all, resources))));
    }
    one_file.push((
        "serde_json::Value".into(),
        Box::new(|| in_process(label, all, resources, value)),
    ));
    one_file.push((
        "narrow serde struct".into(),
        Box::new(|| in_process(label, all, resources, narrow)),
    ));
    for threads in ["1", "2", "1 --no-prefilter", "2 --no-prefilter"] {
        one_file.push((
            format!("imnm cohort -t{threads}"),
            Box::new(move || cohort(label, &[all], threads, resources, out)),
        ));
    }
    let mut v = interleaved(repeat, &one_file);
    let folders = [
        ("bulk/", "bulk"),
        ("bulk-gz/", "bulk-gz"),
        ("bundle.json", "bundle.json"),
    ];
    for (name, path) in folders {
        let label = format!("{} {name}", label.split(' ').next().unwrap_or(""));
        let input = dir.join(path);
        let (label, input) = (&label, &input);
        let methods: Vec<Method<'_>> = ["1", "2"]
            .into_iter()
            .map(|threads| -> Method<'_> {
                (
                    format!("imnm cohort -t{threads}"),
                    Box::new(move || cohort(label, &[input], threads, resources, out)),
                )
            })
            .collect();
        v.extend(interleaved(repeat, &methods));
    }
    v
}

/// Runs `methods` round-robin, `repeat` rounds (so a slow spell of the
/// machine hits every method of a comparison alike), and keeps each one's
/// median time and highest peak RSS.
fn interleaved(repeat: usize, methods: &[Method<'_>]) -> Vec<Figure> {
    let mut runs: Vec<Vec<Figure>> = methods.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeat.max(1) {
        for ((_, f), runs) in methods.iter().zip(&mut runs) {
            runs.push(f());
        }
    }
    methods
        .iter()
        .zip(runs)
        .map(|((method, _), runs)| median(method, runs))
        .collect()
}

fn median(method: &str, mut runs: Vec<Figure>) -> Figure {
    let rounds: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let rss = runs
        .iter()
        .filter_map(|r| r.rss_mb)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let mut mid = runs.swap_remove(runs.len() / 2);
    mid.method = method.to_string();
    mid.rss_mb = rss;
    mid.rounds = rounds;
    eprintln!("  {:<28} {:<26} {:>8.3} s", mid.input, method, mid.secs);
    mid
}

fn file_bytes(paths: &[&Path]) -> u64 {
    fn walk(p: &Path) -> u64 {
        if p.is_dir() {
            std::fs::read_dir(p).map_or(0, |d| d.filter_map(Result::ok).map(|e| walk(&e.path())).sum())
        } else {
            std::fs::metadata(p).map_or(0, |m| m.len())
        }
    }
    paths.iter().map(|p| walk(p)).sum()
}

fn value(line: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(line).is_ok()
}

fn narrow(line: &[u8]) -> bool {
    serde_json::from_slice::<imnm_fhir::fhir::peek::Peek<'_>>(line).is_ok()
}

/// Reads `path` line by line (64 KiB buffer, as `imnm` does) and parses each line with `parse`.
fn in_process(input: &str, path: &Path, resources: u64, parse: fn(&[u8]) -> bool) -> Figure {
    let start = Instant::now();
    let f = std::fs::File::open(path).expect("input");
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let mut buf = Vec::with_capacity(4096);
    let mut ok = 0u64;
    while reader.read_until(b'\n', &mut buf).expect("read") > 0 {
        ok += u64::from(parse(&buf));
        buf.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(ok * 100 >= resources * 99, "only {ok} of {resources} lines parsed");
    Figure {
        input: input.into(),
        method: String::new(),
        resources,
        bytes: file_bytes(&[path]),
        secs,
        rss_mb: None,
        rounds: Vec::new(),
    }
}

fn python_present() -> bool {
    Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success())
}

const PYTHON: &str =
    "import json,sys\nn=0\nfor l in open(sys.argv[1],'rb'):\n    if l.strip():\n        json.loads(l); n+=1\nprint(n)";

fn python(input: &str, path: &Path, resources: u64) -> Figure {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PYTHON).arg(path);
    let (secs, rss) = timed(cmd);
    Figure {
        input: input.into(),
        method: String::new(),
        resources,
        bytes: file_bytes(&[path]),
        secs,
        rss_mb: Some(rss),
        rounds: Vec::new(),
    }
}

/// `imnm cohort --threads N` (`threads` may carry more flags: "1 --no-prefilter").
fn cohort(input: &str, paths: &[&Path], threads: &str, resources: u64, out: &Path) -> Figure {
    let _ = std::fs::remove_dir_all(out);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imnm"));
    cmd.arg("cohort")
        .arg("--threads")
        .args(threads.split(' '))
        .arg("--out")
        .arg(out);
    for p in paths {
        cmd.arg("--input").arg(p);
    }
    let (secs, rss) = timed(cmd);
    Figure {
        input: input.into(),
        method: String::new(),
        resources,
        bytes: file_bytes(paths),
        secs,
        rss_mb: Some(rss),
        rounds: Vec::new(),
    }
}

/// Runs `cmd` (output discarded) and returns wall seconds and the child's peak RSS in MB.
fn timed(mut cmd: Command) -> (f64, f64) {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, zero is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet waited for; the pointers are valid for the call.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, pid, "wait4 failed");
    // 1: error-level data issues (the generator writes a few on purpose), outputs written.
    assert!(
        libc::WIFEXITED(status) && matches!(libc::WEXITSTATUS(status), 0 | 1),
        "{cmd:?} failed: status {status}"
    );
    std::mem::forget(child);
    (secs, usage.ru_maxrss as f64 / 1024.0)
}

fn report(figures: &[Figure]) {
    println!("| input | method | resources | MB | s | resources/s | MB/s | peak RSS MB | × python | ÷ narrow |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let size_of = |f: &Figure| f.input.split(' ').next().unwrap_or("").to_string();
    for f in figures {
        let same = |m: &str| figures.iter().find(|g| size_of(g) == size_of(f) && g.method == m);
        let ratio = |base: Option<&Figure>| base.map_or("".into(), |b| format!("{:.2}", f.rate() / b.rate()));
        println!(
            "| {} | {} | {} | {:.1} | {:.3} | {:.0} | {:.1} | {} | {} | {} |",
            f.input,
            f.method,
            f.resources,
            f.bytes as f64 / 1e6,
            f.secs,
            f.rate(),
            f.bytes as f64 / 1e6 / f.secs,
            f.rss_mb.map_or("".into(), |r| format!("{r:.1}")),
            ratio(same("python json.loads")),
            ratio(same("narrow serde struct")),
        );
    }
    println!();
    targets(figures);
}

fn targets(figures: &[Figure]) {
    let find = |input: &str, m: &str| figures.iter().find(|f| f.input == input && f.method == m);
    let mut inputs: Vec<&str> = figures.iter().map(|f| f.input.as_str()).collect();
    inputs.dedup();
    for input in inputs {
        for mode in ["", " --no-prefilter"] {
            let (Some(c1), Some(c2)) = (
                find(input, &format!("imnm cohort -t1{mode}")),
                find(input, &format!("imnm cohort -t2{mode}")),
            ) else {
                continue;
            };
            // The two ran in the same rounds: the median of the round-by-round ratios.
            let mut parts = vec![format!("2 threads ÷ 1: {:.2} (target ≥ 1.8)", paired(c1, c2))];
            // A store's lines are its group's all.ndjson's: the same Python baseline.
            let group = input.split(' ').next().unwrap_or("");
            let python = find(input, "python json.loads").or_else(|| {
                figures
                    .iter()
                    .find(|f| f.input.starts_with(group) && f.method == "python json.loads")
            });
            if let Some(p) = python {
                let target = match group {
                    "reg100%" => " (target ≥ 2)",
                    "reg50%" => "",
                    _ => " (target ≥ 5)",
                };
                parts.push(format!("1 thread × python: {:.1}{target}", c1.rate() / p.rate()));
            }
            if let Some(n) = find(input, "narrow serde struct") {
                parts.push(format!(
                    "1 thread ÷ narrow: {:.2} (target ≥ 0.70)",
                    c1.rate() / n.rate()
                ));
            }
            let how = if mode.is_empty() {
                "default: prefilter + syntax check"
            } else {
                "--no-prefilter: serde peek of every line"
            };
            println!("- {input} ({how}): {}", parts.join("; "));
        }
    }
}
