#!/usr/bin/env python3
"""Benchmark of issue 27: facts writing per core (`imnm facts --threads 1|2`) and the SQL step
(`imnm sql`) on a facts table of ROWS rows, on DuckDB and optionally Spark (local[2]).

Usage (from the repository root, with the engine venv of .ci/engines-install):
  target/engines/venv/bin/python scripts/bench_facts.py [--resources N] [--rows R] [--spark-rows S] [--repeat K]

Steps (prints a Markdown table to paste into BENCHMARKS.md):
 1. `gen_bench` writes N generated resources as one NDJSON file (once, target/bench-facts/).
 2. `imnm facts` (release) reads it with 1 and 2 reader threads, K runs each (median kept).
 3. The facts written are scaled to R rows: every row copied with patient and source suffixed
    `~k` (k = 0, 1, …, so each copy is other patients with the same shapes), as 32 shard files.
 4. `imnm sql --dialect duckdb` runs over them (view creation to every step materialised and
    the cohort and suppressed Table 1 read back), K runs, median; the same with Spark on S rows
    when S > 0 (one session; its start is not counted).
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engines_run import spark_session, statements  # noqa: E402

DIR = "target/bench-facts"
BUILD = os.environ.get("IMNM_BENCH_BUILD", "target/release")  # target/debug: only to try the script
IMNM = f"{BUILD}/imnm"


def timed(cmd):
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out.stderr


def facts_per_core(resources, repeat):
    data = os.path.join(DIR, f"all-{resources}.ndjson")
    if not os.path.exists(data):
        subprocess.run([f"{BUILD}/examples/gen_bench", "--resources", str(resources), "--one", data], check=True)
    mb = os.path.getsize(data) / 1e6
    rows = []
    for threads in (1, 2):
        runs = []
        for _ in range(repeat):
            out = os.path.join(DIR, f"facts-t{threads}")
            shutil.rmtree(out, ignore_errors=True)
            s, err = timed([IMNM, "facts", "--input", f"bench={data}", "--out", out, "--threads", str(threads), "--shard", "00"])
            runs.append(s)
        facts = int(err.split(" fact row(s)")[0].split()[-1])
        rows.append((threads, resources, mb, statistics.median(runs), facts))
    return rows, os.path.join(DIR, "facts-t1")


def scale(base, rows, name):
    import duckdb
    out = os.path.join(DIR, name)
    if os.path.isdir(out) and glob.glob(os.path.join(out, "facts-*.parquet")):
        return out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW base AS SELECT * FROM read_parquet('{base}/facts-*.parquet')")
    n = con.execute("SELECT count(*) FROM base").fetchone()[0]
    copies = -(-rows // n)
    cols = [r[0] for r in con.execute("DESCRIBE base").fetchall()]
    sel = ", ".join(
        {"patient": "CASE WHEN patient IS NULL THEN NULL ELSE patient || '~' || k END AS patient",
         "source": "source || '~' || k AS source",
         "value_text": "CASE WHEN role = 'medication-reference' THEN value_text || '~' || k ELSE value_text END AS value_text",
         "shard": "lpad(CAST(k % 32 AS VARCHAR), 2, '0') AS shard"}.get(c, c)
        for c in cols)
    con.execute(f"CREATE TABLE scaled AS SELECT {sel} FROM base, range({copies}) t(k) LIMIT {rows}")
    for s in range(32):
        con.execute(f"COPY (SELECT * FROM scaled WHERE shard = '{s:02d}') TO '{out}/facts-bench-{s:02d}.parquet' (FORMAT parquet)")
    return out


def sql(dialect):
    path = os.path.join(DIR, f"{dialect}.sql")
    with open(path, "w", encoding="utf-8") as f:
        f.write(subprocess.run([IMNM, "sql", "--dialect", dialect], check=True, capture_output=True, text=True).stdout)
    return statements(path)


def duckdb_runs(facts, repeat):
    import duckdb
    runs = []
    for _ in range(repeat):
        con = duckdb.connect()
        t = time.perf_counter()
        con.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{facts}/facts-*.parquet')")
        for s in sql("duckdb"):
            con.execute(s.rstrip(";"))
        cases = len(con.execute("SELECT * FROM imnm_cohort").fetchall())
        con.execute("SELECT * FROM imnm_table1_suppressed").fetchall()
        runs.append(time.perf_counter() - t)
        con.close()
    return statistics.median(runs), cases


def spark_runs(facts, repeat):
    spark = spark_session("imnm-bench", "2g")
    runs = []
    try:
        for _ in range(repeat):
            t = time.perf_counter()
            spark.read.parquet(os.path.join(facts, "facts-*.parquet")).createOrReplaceTempView("facts")
            for s in sql("spark"):
                spark.sql(s.rstrip(";"))
            cases = len(spark.sql("SELECT * FROM imnm_cohort").collect())
            spark.sql("SELECT * FROM imnm_table1_suppressed").collect()
            runs.append(time.perf_counter() - t)
    finally:
        spark.stop()
    return statistics.median(runs), cases


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--resources", type=int, default=1_000_000)
    a.add_argument("--rows", type=int, default=10_000_000)
    a.add_argument("--spark-rows", type=int, default=0)
    a.add_argument("--repeat", type=int, default=3)
    o = a.parse_args()
    os.makedirs(DIR, exist_ok=True)
    load = os.getloadavg()
    per_core, base = facts_per_core(o.resources, o.repeat)
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}\n")
    print("| step | threads | input | s (median of %d) | per second | per core per second |" % o.repeat)
    print("|---|---:|---|---:|---:|---:|")
    for threads, n, mb, s, facts in per_core:
        print(f"| imnm facts | {threads} | {n} resources, {mb:.0f} MB NDJSON -> {facts} fact rows | {s:.2f} "
              f"| {n / s:,.0f} resources, {mb / s:.0f} MB | {n / s / threads:,.0f} resources |")
    import duckdb
    import pyspark
    for engine, rows, runner in (("DuckDB " + duckdb.__version__, o.rows, duckdb_runs),
                                 ("Spark " + pyspark.__version__ + " local[2]", o.spark_rows, spark_runs)):
        if rows <= 0:
            continue
        facts = scale(base, rows, f"scaled-{rows}")
        s, cases = runner(facts, o.repeat)
        print(f"| imnm sql on {engine} | 2 | {rows:,} fact rows in 32 files -> {cases:,} cases | {s:.2f} "
              f"| {rows / s:,.0f} fact rows | {rows / s / 2:,.0f} fact rows |")


if __name__ == "__main__":
    main()
