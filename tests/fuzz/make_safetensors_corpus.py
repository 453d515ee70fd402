#!/usr/bin/env python3
# Regenerates tests/fuzz/corpus/safetensors/: small valid_* files (must open) and invalid_* files (must be
# rejected), one per header check of src/format/safetensors.cpp. Standard library only; deterministic.
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "safetensors")


def raw(name, header, data=b"", header_len=None):
    h = header if isinstance(header, bytes) else header.encode()
    n = len(h) if header_len is None else header_len
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", n) + h + data)


def st(name, tensors, data, meta=None, pad=True):
    hdr = {}
    if meta is not None:
        hdr["__metadata__"] = meta
    for k, (dtype, shape, off) in tensors.items():
        hdr[k] = {"dtype": dtype, "shape": shape, "data_offsets": off}
    h = json.dumps(hdr, separators=(",", ":"))
    if pad:
        h += " " * ((8 - len(h) % 8) % 8)
    raw(name, h, data)


os.makedirs(OUT, exist_ok=True)
st("valid_two_tensors.safetensors",
   {"a.weight": ("BF16", [2, 3], [0, 12]), "b.scale": ("F8_E8M0", [4], [12, 16])},
   bytes(range(16)), meta={"format": "pt"})
st("valid_every_dtype.safetensors",
   {"f32": ("F32", [2], [0, 8]), "f16": ("F16", [2], [8, 12]), "e4m3": ("F8_E4M3", [4], [12, 16]),
    "i64": ("I64", [1], [16, 24]), "i32": ("I32", [1], [24, 28]), "i16": ("I16", [1], [28, 30]),
    "i8": ("I8", [1], [30, 31]), "u8": ("U8", [1], [31, 32]), "b": ("BOOL", [1], [32, 33])},
   bytes(33), pad=False)
st("valid_empty_tensor.safetensors", {"e": ("F32", [0, 7], [0, 0]), "s": ("F32", [], [0, 4])}, b"\x00\x00\x80\x3f")
raw("valid_empty_header.safetensors", "{}")
with open(os.path.join(OUT, "invalid_short.safetensors"), "wb") as f:
    f.write(b"\x02\x00\x00")
raw("invalid_header_too_long.safetensors", "{}", header_len=1000)
raw("invalid_header_over_cap.safetensors", "{}", header_len=1 << 62)
raw("invalid_json.safetensors", '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]')
raw("invalid_not_object.safetensors", "[1, 2, 3]")
st("invalid_size_mismatch.safetensors", {"a": ("F32", [3], [0, 8])}, bytes(8))
st("invalid_overlap.safetensors", {"a": ("F32", [2], [0, 8]), "b": ("F32", [2], [4, 12])}, bytes(12))
st("invalid_beyond_data.safetensors", {"a": ("F32", [4], [0, 16])}, bytes(8))
st("invalid_unknown_dtype.safetensors", {"a": ("F128", [1], [0, 16])}, bytes(16))
st("invalid_negative_dim.safetensors", {"a": ("F32", [-1, -4], [0, 16])}, bytes(16))
st("invalid_shape_overflow.safetensors", {"a": ("U8", [1 << 32, 1 << 32, 1 << 32], [0, 0])}, b"")
raw("invalid_duplicate.safetensors",
    '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
    b"\x01\x02")
st("invalid_metadata.safetensors", {"a": ("U8", [1], [0, 1])}, b"\x01", meta={"n": 3})
raw("invalid_missing_offsets.safetensors", '{"a":{"dtype":"U8","shape":[1]}}', b"\x01")
