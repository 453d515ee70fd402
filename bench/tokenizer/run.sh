#!/bin/sh
# Tokenizer benchmark: dsv4 vs HF's official Rust tokenizers (npm) on the same >= 1 MB corpus, one
# core each, in one run; prints both throughputs and the ratio. Needs node, `npm ci` in
# tests/fixtures/tokenizer, and a build with bench-tokenizer:
#   cmake --build build --target bench-tokenizer && bench/tokenizer/run.sh build
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
tok="$root/tests/fixtures/tokenizer/deepseek_v4_tokenizer.json"
corpus=$(mktemp --suffix=.jsonl)
trap 'rm -f "$corpus"' EXIT
pin=""
command -v taskset >/dev/null 2>&1 && pin="taskset -c 0"
node "$root/bench/tokenizer/make_corpus.mjs" "$corpus"
ours=$($pin "$build/bench/bench-tokenizer" "$tok" "$corpus" 5)
theirs=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false $pin node "$root/bench/tokenizer/bench_hf_tokenizers.mjs" "$tok" "$corpus" 5)
echo "$ours"
echo "$theirs"
a=$(echo "$ours" | sed 's/.*tokens_per_s=\([0-9]*\).*/\1/')
b=$(echo "$theirs" | sed 's/.*tokens_per_s=\([0-9]*\).*/\1/')
ta=$(echo "$ours" | sed 's/.*tokens=\([0-9]*\) .*/\1/')
tb=$(echo "$theirs" | sed 's/.*tokens=\([0-9]*\) .*/\1/')
[ "$ta" = "$tb" ] || echo "WARNING: token counts differ ($ta vs $tb)"
awk -v a="$a" -v b="$b" 'BEGIN { printf "ratio dsv4 / hf-tokenizers = %.2fx\n", a / b }'
