#!/usr/bin/env bash
# Installs the Debian 12 packages dsv4 builds against (only those missing), then configures and builds
# into build/ (Release; the CUDA backend too when nvcc is found). Sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DSV4_APT_PACKAGES=(build-essential cmake ninja-build pkg-config git ca-certificates
    nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libonig-dev libcpp-httplib-dev
    libgtest-dev libgmock-dev libbenchmark-dev)

missing=()
for p in "${DSV4_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Tools are checked as commands: a machine may already have them from elsewhere (e.g. a newer Node).
command -v clang-format >/dev/null || missing+=(clang-format)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
    echo "dsv4 setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${DSV4_BUILD_DIR:-build}
JOBS=${DSV4_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${DSV4_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
