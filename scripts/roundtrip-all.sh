#!/usr/bin/env bash
# Issue #2's acceptance check: for every file of a data folder, with the default route and with
# --route paper: `melloc compress F -o X && melloc decompress X -o Y && cmp F Y` (shape and dtype
# inferred from the file name). Prints per-file sizes and times, the aggregate ratio of each route
# (total bytes in / total bytes out) and the slowest file.
# Usage: scripts/roundtrip-all.sh [DATA_DIR] (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
[ -d "$DATA" ] || { echo "roundtrip-all: $DATA does not exist" >&2; exit 1; }
cargo build --release -q -p melloc-cli
BIN=$PWD/target/release/melloc
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail=0
for route in auto paper; do
  total_in=0; total_out=0; slowest=0; slowest_file=""
  for f in "$DATA"/*.f32 "$DATA"/*.f64; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    start=$(date +%s.%N)
    "$BIN" compress -q -f --route "$route" "$f" -o "$WORK/x.mlc"
    "$BIN" decompress -q -f "$WORK/x.mlc" -o "$WORK/y"
    end=$(date +%s.%N)
    if ! cmp -s "$f" "$WORK/y"; then echo "MISMATCH $route $name"; fail=1; fi
    in=$(stat -c %s "$f"); out=$(stat -c %s "$WORK/x.mlc")
    total_in=$((total_in + in)); total_out=$((total_out + out))
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
    printf '%-6s %-40s %10d -> %9d  %7.3fx  %6.2f s\n' "$route" "$name" "$in" "$out" "$(awk -v a="$in" -v b="$out" 'BEGIN { print a / b }')" "$secs"
    if awk -v a="$secs" -v b="$slowest" 'BEGIN { exit !(a > b) }'; then slowest=$secs; slowest_file=$name; fi
  done
  printf '%s: aggregate %d -> %d bytes = %.3fx; slowest file %s (%.2f s compress+decompress)\n' \
    "$route" "$total_in" "$total_out" "$(awk -v a="$total_in" -v b="$total_out" 'BEGIN { print a / b }')" "$slowest_file" "$slowest"
done
exit $fail
