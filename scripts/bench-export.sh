#!/usr/bin/env bash
# Export and merge benchmark (issue 29 item 3): `imnm export` and `imnm merge` on
# registry-shaped inputs (every patient a case, `RELEVANT` % of the Observations CK
# or antibody results) at each size in SIZES, with wall time and peak RSS; then
# cumulus-etl 4.3.6 (PyPI, in a venv under target/cumulus with pinned
# dependencies) on the same files at the sizes in CUMULUS_SIZES, and each ratio
# against its target (>= 50x; RSS flat in input size).
#
#   scripts/bench-export.sh                          # 100k and 1M resources, cumulus-etl at 100k
#   SIZES=100000,10000000 scripts/bench-export.sh     # the issue's 100k and 10M
#   CUMULUS_SIZES= scripts/bench-export.sh           # without cumulus-etl
#
# Inputs are generated once under target/bench-export/; figures are one run each.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="${SIZES:-100000,1000000}"
cumulus_sizes="${CUMULUS_SIZES-100000}"
relevant="${RELEVANT:-10}"
work=target/bench-export
mkdir -p "$work"

cargo build --release --quiet --bin imnm --example gen_bench
build="${CARGO_TARGET_DIR:-target}/release"   # the binaries cargo just built, wherever its target is
imnm="$build/imnm"
gen="$build/examples/gen_bench"

venv=target/cumulus/venv
cumulus_ready() { [ -x "$venv/bin/cumulus-etl" ]; }
if [ -n "$cumulus_sizes" ] && ! cumulus_ready; then
  echo "installing cumulus-etl 4.3.6 into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "cumulus-etl==4.3.6" "pyathena>=3.0"
fi

# Runs a command, prints "seconds peak_rss_mb" (GNU time's %e and %M); a non-zero
# exit is said on stderr (the exit code tells whether any issue was found).
measure() {
  /usr/bin/time -o "$work/time.txt" -f "%e %M" "$@" >/dev/null 2>"$work/last.err" \
    || echo "exit $? from ${1##*/} ${2:-} (stderr in $work/last.err)" >&2
  tail -1 "$work/time.txt" | awk '{printf "%s %.0f", $1, $2 / 1024}'
}

key="$work/site.key"
[ -f "$key" ] || "$imnm" keygen --out "$key" >/dev/null
key2="$work/site2.key"
[ -f "$key2" ] || "$imnm" keygen --out "$key2" >/dev/null

echo "| resources | MB | imnm export s | export peak RSS MB | imnm merge (2 bundles) s | merge peak RSS MB | cumulus-etl s | cumulus-etl peak RSS MB | export × cumulus (target ≥ 50) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
IFS=, read -ra list <<<"$sizes"
for n in "${list[@]}"; do
  input="$work/r${relevant}-$n"
  if [ ! -d "$input" ]; then
    "$gen" --registry "$relevant" --resources "$n" --bulk "$input" >&2
  fi
  mb=$(du -sm "$input" | cut -f1)
  rm -rf "$work/out-a" "$work/out-b" "$work/pooled"
  read -r es erss <<<"$(measure "$imnm" export --input "$input" --out "$work/out-a" --site-key "$key" --site a)"
  "$imnm" export --input "$input" --out "$work/out-b" --site-key "$key2" --site b >/dev/null 2>&1 || true
  read -r ms mrss <<<"$(measure "$imnm" merge "$work/out-a" "$work/out-b" --out "$work/pooled")"
  cs="-"; crss="-"; ratio="-"
  if [[ ",$cumulus_sizes," == *",$n,"* ]]; then
    rm -rf "$work/cumulus-out" "$work/cumulus-phi"
    mkdir -p "$work/cumulus-out" "$work/cumulus-phi"
    read -r cs crss <<<"$(measure "$venv/bin/cumulus-etl" etl "$input" "$work/cumulus-out" "$work/cumulus-phi" \
      --output-format ndjson --export-group G --export-timestamp 2026-01-01)"
    ratio=$(awk -v c="$cs" -v e="$es" 'BEGIN { printf "%.1f", c / e }')
  fi
  echo "| $n | $mb | $es | $erss | $ms | $mrss | $cs | $crss | $ratio |"
done
