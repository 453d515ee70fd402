#!/bin/bash
# Collects the CUDA binaries of build-cuda and the shared libraries the device image may lack into
# build-cuda/devpkg (carried to the device machine by the `run` tool; see bench/device_run.sh).
set -eu
B=${1:-build-cuda}
rm -rf "$B/devpkg" && mkdir -p "$B/devpkg/lib" "$B/devpkg/sys"
for f in tests/test-ops tests/test-model dsv4; do [ -f "$B/$f" ] && cp "$B/$f" "$B/devpkg/"; done
# lib: what the device image may lack; sys: this machine's C/C++ runtime, used only through its own
# loader when the device's glibc is older than ours
copy() { p=$(ldconfig -p | awk -v l="$1" '$1 == l && /x86-64/ {print $NF; exit}'); [ -n "$p" ] && cp -L "$p" "$2/"; }
for bin in "$B"/devpkg/test-ops "$B"/devpkg/test-model "$B"/devpkg/dsv4; do
    [ -f "$bin" ] || continue
    ldd "$bin" | awk '$3 ~ /^\// {print $1}' | grep -vE '^(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libcudart|libcuda|libcublas|libcublasLt)\.' |
        while read -r lib; do copy "$lib" "$B/devpkg/lib"; done
done
for lib in libstdc++.so.6 libgcc_s.so.1 libc.so.6 libm.so.6 ld-linux-x86-64.so.2; do copy $lib "$B/devpkg/sys"; done
du -sh "$B/devpkg"
