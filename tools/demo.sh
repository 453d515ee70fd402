#!/usr/bin/env bash
# README command 1: set up, build, and generate text with the built-in default model
# (a tiny random-weight DeepSeek V4 with the real V4 tokenizer, created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
./build/dsv4 generate --prompt "${1:-The DeepSeek V4 architecture}" --max-tokens 32 --stats
