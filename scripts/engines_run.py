#!/usr/bin/env python3
"""Runs `imnm sql` scripts on a real engine (DuckDB or Spark local mode) over facts tables.

Usage: engines_run.py duckdb|spark JOB [JOB ...]   with JOB = FACTS_DIR,SQL_FILE,OUT_DIR

For each job: the facts view reads every facts-*.parquet in FACTS_DIR, the SQL file's statements
(each ending with `;` at the end of a line) run in order, and OUT_DIR receives cohort.json,
candidates.json, table1.json and table1_suppressed.json: one JSON object per line, the view's columns in order,
numbers as the engine returns them (the test prints them the way `imnm cohort` does).
One engine session serves every job (Spark starts once, local[2]).
"""
import atexit
import json
import os
import shutil
import sys
import tempfile


def statements(path):
    text = open(path, encoding="utf-8").read()
    lines = [l for l in text.splitlines() if not l.startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


def plain(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return float(v)  # Decimal


def write(out, name, columns, rows):
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(dict(zip(columns, [plain(v) for v in r]))) + "\n")


VIEWS = [("cohort.json", "imnm_cohort"), ("candidates.json", "imnm_candidates"), ("table1.json", "imnm_table1"),
         ("table1_suppressed.json", "imnm_table1_suppressed")]


def run_duckdb(jobs):
    import duckdb
    con = duckdb.connect()
    for facts, sql, out in jobs:
        glob = os.path.join(facts, "facts-*.parquet")
        con.execute(f"CREATE OR REPLACE VIEW facts AS SELECT * FROM read_parquet('{glob}')")
        for s in statements(sql):
            con.execute(s.rstrip(";"))
        for name, view in VIEWS:
            cur = con.execute(f"SELECT * FROM {view}")
            cols = [d[0] for d in cur.description]
            write(out, name, cols, cur.fetchall())


def spark_session(name, memory):
    """A Spark session in local mode (local[2], 4 shuffle partitions, no UI), its warehouse in a temporary folder
    removed when the process ends."""
    from pyspark.sql import SparkSession
    warehouse = tempfile.mkdtemp(prefix="imnm-spark-warehouse-")
    atexit.register(shutil.rmtree, warehouse, True)
    spark = (SparkSession.builder.master("local[2]").appName(name)
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
             .config("spark.driver.memory", memory)
             .config("spark.sql.warehouse.dir", warehouse)
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_spark(jobs):
    spark = spark_session("imnm-engines", "1g")
    try:
        for facts, sql, out in jobs:
            spark.read.parquet(os.path.join(facts, "facts-*.parquet")).createOrReplaceTempView("facts")
            for s in statements(sql):
                spark.sql(s.rstrip(";"))
            for name, view in VIEWS:
                df = spark.sql(f"SELECT * FROM {view}")
                write(out, name, df.columns, [tuple(r) for r in df.collect()])
    finally:
        spark.stop()


def main():
    engine, jobs = sys.argv[1], [tuple(j.split(",")) for j in sys.argv[2:]]
    for _, _, out in jobs:
        os.makedirs(out, exist_ok=True)
    {"duckdb": run_duckdb, "spark": run_spark}[engine](jobs)


if __name__ == "__main__":
    main()
