#!/bin/bash
# Runs the carried CUDA test/bench binaries on the device machine (see bench/NOTES.md). The binaries are
# built on the workstation (same x86-64) and carried in build-cuda/devpkg with the shared libraries the
# device image lacks (libfmt, libgomp); if its glibc is older, the carried loader runs them.
# usage: bench/device_run.sh <what...>
#   what: env | ops | ops-memcheck | model | model-memcheck | bench | bench-slice | hf | ratio
# bench: the real-size model, as many layers as fit (BENCH_ARGS adds options) -> $OUT/bench.log.
# bench-slice: dsv4 on the HF slice (first BENCH_LAYERS layers, BENCH_EXPERTS experts; default 4/64; batch 1 at
# SLICE_CTX, default 1024) -> $OUT/bench_slice.log. hf: the same slice in HF transformers (tools/hf_bench.py,
# PyTorch bf16; HF_ARGS adds options, e.g. "--steps 50") -> $OUT/hf.log. ratio: dsv4/hf decode tok/s per context
# found in both logs (bench_slice.log, else bench.log). `bench bench-slice hf ratio` runs the whole item 4.
set -u
PKG=${PKG:-build-cuda/devpkg}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
run() {  # run BIN ARGS...: natively with the carried libs, else through the carried loader
    local bin=$1; shift
    if LD_LIBRARY_PATH=$PKG/lib:/usr/local/cuda/lib64 "$PKG/$bin" --gtest_list_tests >/dev/null 2>&1 || [ "$bin" = dsv4 ]; then
        LD_LIBRARY_PATH=$PKG/lib:/usr/local/cuda/lib64 "$PKG/$bin" "$@"
    else
        "$PKG/sys/ld-linux-x86-64.so.2" --library-path "$PKG/lib:$PKG/sys:/usr/local/cuda/lib64:/usr/lib/x86_64-linux-gnu" "$PKG/$bin" "$@"
    fi
}
for what in "$@"; do
    echo "=== $what"
    case $what in
        env) nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv; ldd --version | head -1
             LD_LIBRARY_PATH=$PKG/lib:/usr/local/cuda/lib64 ldd "$PKG/test-ops" | grep -E "not found|fmt|gomp|cudart" ;;
        ops) run test-ops -b cuda 2>&1 | tee "$OUT/ops.log" | grep -E "FAILED|PASSED|SKIPPED|worst|^  cuda|Failure|out−ref|error" | head -80 ;;
        ops-memcheck) compute-sanitizer --tool memcheck --print-limit 20 env LD_LIBRARY_PATH=$PKG/lib:/usr/local/cuda/lib64 "$PKG/test-ops" -b cuda \
                          > "$OUT/ops_memcheck.log" 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/ops_memcheck.log" | head ;;
        model) run test-model --gtest_filter='*CudaModel*' 2>&1 | tee "$OUT/model.log" | grep -vE "^\[ RUN|^\[       OK" | tail -40 ;;
        model-memcheck) compute-sanitizer --tool memcheck --print-limit 20 env LD_LIBRARY_PATH=$PKG/lib:/usr/local/cuda/lib64 "$PKG/test-model" \
                          --gtest_filter='*CudaModel.Golden*:*LongSequence*' > "$OUT/model_memcheck.log" 2>&1; echo "rc=$?"
                        grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/model_memcheck.log" | head ;;
        bench) run dsv4 bench ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -40 ;;
        bench-slice) run dsv4 bench --layers "${BENCH_LAYERS:-4}" --experts "${BENCH_EXPERTS:-64}" --batch 1 \
                         --ctx ${SLICE_CTX:-1024} --prefill ${SLICE_CTX:-1024} --no-ops ${SLICE_ARGS:-} 2>&1 \
                         | tee "$OUT/bench_slice.log" | tail -20 ;;
        hf) PYTHONUNBUFFERED=1 python3 tools/hf_bench.py --layers "${BENCH_LAYERS:-4}" --experts "${BENCH_EXPERTS:-64}" \
                --ctx ${SLICE_CTX:-1024} ${HF_ARGS:-} 2>&1 | tee "$OUT/hf.log" | tail -40 ;;
        ratio) DL="$OUT/bench_slice.log"; [ -s "$DL" ] || DL="$OUT/bench.log"
               if [ ! -s "$DL" ] || [ ! -s "$OUT/hf.log" ]; then
                   echo "ratio: needs $OUT/bench_slice.log (or bench.log) and $OUT/hf.log (run bench-slice and hf first)"
               else  # first 'tok/s' of a decode line is the decode rate (the prefill rate follows it)
                   awk 'function rate(  i) { for (i = 1; i <= NF; ++i) if ($i == "tok/s") return $(i - 1); return "" }
                        FILENAME == ARGV[1] && /^# dsv4 bench:/ { for (i = 2; i <= NF; ++i) if ($i == "routed") de = $(i - 1) }
                        FILENAME == ARGV[1] && $1 == "decode" && $2 == "b=1" { c = substr($3, 5); d[c] = rate(); dl[c] = substr($4, 8) }
                        FILENAME == ARGV[2] && /^hf decode b=1 ctx=/ && !/FAILED/ {
                            c = substr($4, 5); h[c] = rate(); hl[c] = substr($5, 8); he[c] = substr($6, 9) }
                        END { n = 0
                              for (c in d) if ((c in h) && d[c] + 0 > 0 && h[c] + 0 > 0) {
                                  w = (dl[c] != hl[c] || (de != "" && de != he[c])) ? \
                                      sprintf("  WARNING: slices differ (dsv4 layers=%s experts=%s, hf layers=%s experts=%s)", dl[c], de, hl[c], he[c]) : ""
                                  printf "dsv4/hf decode tok/s ratio ctx=%s: %.2f (dsv4 %s tok/s, hf %s tok/s)%s\n", c, d[c] / h[c], d[c], h[c], w; ++n }
                              if (n == 0) print "ratio: no context with a decode line in both logs" }' "$DL" "$OUT/hf.log" \
                       | sort -t= -k2 -n | tee "$OUT/ratio.log"
               fi ;;
    esac
done
