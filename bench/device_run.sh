#!/bin/bash
# Runs the carried CUDA test/bench binaries on the device machine (see bench/NOTES.md). The binaries are
# built on the workstation (same x86-64) and carried in build-cuda/devpkg with the shared libraries the
# device image lacks (libfmt, libgomp); if its glibc is older, the carried loader runs them.
# usage: bench/device_run.sh <what...>   what: env | ops | ops-memcheck | model | model-memcheck | bench
set -u
PKG=${PKG:-build-cuda/devpkg}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
run() {  # run BIN ARGS...: natively with the carried libs, else through the carried loader
    local bin=$1; shift
    if LD_LIBRARY_PATH=$PKG/lib "$PKG/$bin" --gtest_list_tests >/dev/null 2>&1 || [ "$bin" = dsv4 ]; then
        LD_LIBRARY_PATH=$PKG/lib "$PKG/$bin" "$@"
    else
        "$PKG/sys/ld-linux-x86-64.so.2" --library-path "$PKG/lib:$PKG/sys:/usr/local/cuda/lib64:/usr/lib/x86_64-linux-gnu" "$PKG/$bin" "$@"
    fi
}
for what in "$@"; do
    echo "=== $what"
    case $what in
        env) nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv; ldd --version | head -1
             LD_LIBRARY_PATH=$PKG/lib ldd "$PKG/test-ops" | grep -E "not found|fmt|gomp|cudart" ;;
        ops) run test-ops -b cuda 2>&1 | tee "$OUT/ops.log" | grep -E "FAILED|PASSED|SKIPPED|worst|^  cuda|Failure|out−ref|error" | head -80 ;;
        ops-memcheck) compute-sanitizer --tool memcheck --print-limit 20 env LD_LIBRARY_PATH=$PKG/lib "$PKG/test-ops" -b cuda \
                          > "$OUT/ops_memcheck.log" 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/ops_memcheck.log" | head ;;
        model) run test-model --gtest_filter='*CudaModel*' 2>&1 | tee "$OUT/model.log" | grep -vE "^\[ RUN|^\[       OK" | tail -40 ;;
        model-memcheck) compute-sanitizer --tool memcheck --print-limit 20 env LD_LIBRARY_PATH=$PKG/lib "$PKG/test-model" \
                          --gtest_filter='*CudaModel.Golden*:*LongSequence*' > "$OUT/model_memcheck.log" 2>&1; echo "rc=$?"
                        grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/model_memcheck.log" | head ;;
        bench) run dsv4 bench ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -40 ;;
    esac
done
