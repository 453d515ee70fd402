#!/bin/bash
# One device call (lead's session script): unpack the carried devpkg, then tests and a short bench.
# usage: bash bench/device_quick.sh [phases...]   phases: ops model bench profile memcheck full
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -d build/devpkg ] || tar -xJf build/devpkg.tar.xz -C build
mkdir -p /work; [ -e /work/main ] || ln -s "$(pwd)" /work/main
export PKG=build/devpkg
R() { LD_LIBRARY_PATH=$PKG/lib:/usr/local/cuda/lib64 "$PKG/$@"; }
for ph in "$@"; do
  echo "=== $ph $(date +%T)"
  case $ph in
    ops) R test-ops -b cuda > "$OUT/ops.log" 2>&1; echo rc=$?; grep -E "FAILED|PASSED|Failure" "$OUT/ops.log" | head -30
         sed -n '/worst/,$p' "$OUT/ops.log" | grep cuda ;;
    model) R test-model --gtest_filter='*Cuda*' > "$OUT/model.log" 2>&1; echo rc=$?
           grep -E "FAILED|PASSED|graphs|rel|error" "$OUT/model.log" | head -40 ;;
    bench) R dsv4 bench ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | grep -vE "^\s*$" | tail -45 ;;
    profile) DSV4_CUDA_PROFILE=1 R dsv4 bench --layers 4 --experts 64 --ctx 1024 --batch 1 --prefill 1024 --steps 20 --no-ops \
               > "$OUT/profile.log" 2>&1; tail -30 "$OUT/profile.log" ;;
    memcheck) compute-sanitizer --tool memcheck --print-limit 10 env LD_LIBRARY_PATH=$PKG/lib:/usr/local/cuda/lib64 $PKG/test-ops -b cuda \
                > "$OUT/ops_memcheck.log" 2>&1; echo rc=$?; grep -E "ERROR SUMMARY|FAILED" "$OUT/ops_memcheck.log" | head ;;
  esac
done
