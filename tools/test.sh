#!/usr/bin/env bash
# README command 2 (and CI): set up, build, check formatting and layering, run the whole test suite.
# GPU tests skip cleanly without a GPU. DSV4_SKIP_ASAN=1 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
export DSV4_CMAKE_ARGS="-DDSV4_WERROR=ON ${DSV4_CMAKE_ARGS:-}"
bash tools/setup.sh

echo "== format and layering"
git ls-files 'src/*.h' 'src/*.cpp' 'src/*.cu' 'src/*.cuh' 'tests/*.cpp' 'tests/*.h' \
    | xargs clang-format --dry-run --Werror
python3 tools/check_layering.py

echo "== npm test dependencies (the official openai client; its test skips if this fails)"
(cd tests/server/openai_client && npm ci --no-audit --no-fund --silent) || echo "warning: npm ci failed"

echo "== tests"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
ctest --test-dir build --output-on-failure -j "${DSV4_JOBS:-$(nproc)}"

if [ "${DSV4_SKIP_ASAN:-0}" != 1 ]; then
    echo "== ASan + UBSan: parsers, fuzz corpora, server"
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDSV4_CUDA=OFF -DDSV4_BENCH=OFF \
        -DDSV4_SANITIZE_ADDRESS=ON -DDSV4_WERROR=ON
    # Every fuzz target is named here: a pipe into `grep -q` under pipefail can fail at random (SIGPIPE).
    cmake --build build-asan -j "${DSV4_JOBS:-$(nproc)}" --target test-unit test-server fuzz-safetensors
    ctest --test-dir build-asan --output-on-failure -j "${DSV4_JOBS:-$(nproc)}" -L 'unit|server|fuzz'
fi
