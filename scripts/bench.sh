#!/usr/bin/env bash
# Runs the scan benchmark and prints a Markdown report (paste it into BENCHMARKS.md).
#
#   scripts/bench.sh                 # 10k and 100k resources, 3 runs per figure
#   scripts/bench.sh --1m            # adds 1M resources
#   scripts/bench.sh --big 10        # adds a 10 GB single NDJSON file (generated once under target/bench-big/)
#   REPEAT=5 scripts/bench.sh        # runs per figure (median kept)
#
# Figures are measured in one run on the same bytes; ratios compare figures of that run only.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="10000,100000"
big_gb=""
while [ $# -gt 0 ]; do
  case "$1" in
    --1m) sizes="10000,100000,1000000" ;;
    --big) big_gb="$2"; shift ;;
    *) echo "usage: scripts/bench.sh [--1m] [--big GB]" >&2; exit 2 ;;
  esac
  shift
done

export IMNM_BENCH_SIZES="$sizes"
export IMNM_BENCH_REPEAT="${REPEAT:-3}"
if [ -n "$big_gb" ]; then
  big="target/bench-big/big-${big_gb}gb.ndjson"
  if [ ! -f "$big" ]; then
    mkdir -p target/bench-big
    cargo run --release --quiet --example gen_bench -- --gb "$big_gb" --one "$big"
  fi
  export IMNM_BENCH_BIG="$big"
fi
cargo bench --bench scan
