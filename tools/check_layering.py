#!/usr/bin/env python3
"""Fails when a file includes a header from a layer above its own (style.md §2).

ALLOWED maps each layer to the layers it may include besides itself (system headers are free).
"""
import pathlib
import re
import sys

ALLOWED = {
    "core": set(),
    "format": {"core"},
    "tokenizer": {"core", "format"},
    "ops": {"core"},
    "ops/cpu": {"ops", "core"},
    "ops/cuda": {"ops", "core"},
    "dist": {"ops", "core"},
    "model": {"ops", "ops/cpu", "ops/cuda", "format", "core"},
    "runtime": {"model", "ops", "dist", "format", "core"},
    "server": {"runtime", "tokenizer", "model", "format", "core"},
    # cli may reach the backends directly only for `dsv4 bench`, which times single ops
    "cli": {"server", "runtime", "tokenizer", "model", "ops", "ops/cpu", "ops/cuda", "format", "core", "cli"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel: str) -> str:
    parts = rel.split("/")
    if parts[0] == "ops" and len(parts) > 2 and parts[1] in ("cpu", "cuda"):
        return "ops/" + parts[1]
    return parts[0]


def main() -> int:
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    bad = []
    for f in sorted(src.rglob("*")):
        if f.suffix not in (".h", ".cpp", ".cu", ".cuh"):
            continue
        rel = f.relative_to(src).as_posix()
        me = layer_of(rel)
        if me not in ALLOWED:
            bad.append(f"{rel}: unknown layer '{me}' (add it to tools/check_layering.py)")
            continue
        for inc in INCLUDE.findall(f.read_text(errors="replace")):
            if "/" not in inc:
                continue
            dep = layer_of(inc)
            if dep not in ALLOWED:
                continue  # not one of ours (e.g. a system header in quotes)
            if dep != me and dep not in ALLOWED[me]:
                bad.append(f"{rel}: includes \"{inc}\" — layer '{me}' may not depend on '{dep}'")
    for b in bad:
        print("layering:", b)
    print(f"layering: {'FAILED' if bad else 'ok'} ({len(bad)} violation(s))")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
