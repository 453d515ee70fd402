#!/usr/bin/env python3
"""HF fp32 logits of a dequantized checkpoint: the oracle for `dsv4 quantize` (issue 5).

`dsv4 quantize --in tests/fixtures/tiny_a --out Q` then `dsv4 quantize --dequantize --in Q --out DEQ`
gives the exact f32 values of the FP8/FP4 weights (released names). This script loads DEQ with
transformers' own loader (released-name conversion), runs the no-cache forward on tiny_a's golden
input_ids with the dsv4 indexer tie rule (tools/gen_golden.py), and writes `logits` [T, V] f32 to
OUT/quantized_hf_logits.safetensors. It first checks the pipeline on tiny_a itself against golden.
Runs on the device machine (torch + transformers 5.17); see tests/fixtures/README.md.
"""

import argparse
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden  # noqa: E402  (indexer tie rule)
from transformers import DeepseekV4ForCausalLM  # noqa: E402

torch.set_grad_enabled(False)


def logits_of(path, ids):
    model = DeepseekV4ForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model = model.float().eval()
    with gen_golden.indexer_tie_rule():
        return model(input_ids=ids[None, :], use_cache=False).logits[0].float()


def rel_err(a, b):
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default="tests/fixtures/tiny_a")
    ap.add_argument("--dequantized", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    golden = load_file(os.path.join(a.fixture, "golden.safetensors"))
    ids = golden["input_ids"].long()
    check = logits_of(a.fixture, ids)
    print(f"pipeline check: HF from_pretrained(tiny_a) vs golden logits: {rel_err(check, golden['logits']):.3g}")
    deq = logits_of(a.dequantized, ids)
    print(f"HF on dequantized weights vs golden (bf16 weights): {rel_err(deq, golden['logits']):.4f}")
    os.makedirs(a.out, exist_ok=True)
    save_file({"logits": deq.contiguous(), "input_ids": ids}, os.path.join(a.out, "quantized_hf_logits.safetensors"),
              metadata={"torch": torch.__version__, "transformers": __import__("transformers").__version__})


if __name__ == "__main__":
    main()
