#!/usr/bin/env python3
"""HF transformers side of the `dsv4 bench` comparison: batch-1 greedy decode on the same V4-Flash slice.

Builds a transformers DeepseekV4ForCausalLM (bf16, eager attention, random weights) with the slice that
`dsv4 bench` uses (src/cli/cmd_bench.cpp): the real V4-Flash dimensions from the released-style
config (tests/fixtures/configs/v4-flash.config.json), its first --layers layers (per-layer attention
types, compress rates and hash/score routing as in the config) and --experts routed experts per layer.
For each context C it prefills C random token ids into a DynamicCache (the V4 cache layers keep the
sliding window, the compressor buffers/entries and the indexer state), then times --steps greedy
single-token decode steps (after --warmup), torch.cuda.synchronize() around each, and prints one line:

    hf decode b=1 ctx=1024 layers=4 experts=64  123.456 ms/step  8.1 tok/s  (prefill 1024 tok: 1.23 s, ...)

or `hf decode b=1 ctx=C layers=L experts=E  FAILED: <reason>`. Header lines start with '#'.
Needs torch + transformers >= 5.17 (DeepseekV4ForCausalLM) and a CUDA GPU; no network, no checkpoint.
bench/device_run.sh `hf` runs it and `ratio` compares it with the dsv4 bench log (bench/NOTES.md).
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import traceback

import torch

import transformers
from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
from transformers.cache_utils import DynamicCache

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:  # layer-type names shared with the golden generator (importing it only defines functions)
    from gen_golden import CSA, HCA, SWA  # noqa: E402
except Exception:  # pragma: no cover - gen_golden needs safetensors; the names are fixed by HF
    SWA, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"

DEFAULT_CONFIG = os.path.join(HERE, "..", "tests", "fixtures", "configs", "v4-flash.config.json")


# ------------------------------------------------------------------------------------------------
# Config: released-style config.json (the keys of the DeepSeek-V4 checkpoints) -> DeepseekV4Config slice


def hf_config_from_released(rc, layers, experts):
    """DeepseekV4Config with the first `layers` layers of released config `rc` and `experts` experts.

    Mirrors what `dsv4 bench` does to its Dsv4Config: num_hidden_layers = L, compress_ratios and the
    hash/score routing kinds cut to L, n_routed_experts = E, no MTP layer; everything else as released.
    Released compress_ratios hold one entry per layer (plus one for the MTP layer): 0 = sliding window
    only, 4 = CSA (compressor + indexer), any other value = HCA with that ratio (HF keys the rate by
    layer type; a legacy `compress_rate_hca` wins, as in HF's own conversion).
    """
    n_layers = int(rc["num_hidden_layers"])
    L = max(1, min(int(layers), n_layers))
    ratios = [int(r) for r in rc["compress_ratios"][:L]]
    if len(ratios) < L:
        raise ValueError(f"compress_ratios has {len(rc['compress_ratios'])} entries, need {L}")
    layer_types, hca_rates = [], set()
    for r in ratios:
        if r == 0:
            layer_types.append(SWA)
        elif r == 4:
            layer_types.append(CSA)
        else:
            layer_types.append(HCA)
            hca_rates.add(r)
    hca_rate = int(rc.get("compress_rate_hca", 0)) or (hca_rates.pop() if len(hca_rates) == 1 else 128)
    if len(hca_rates) > 1:
        raise ValueError(f"several HCA compress ratios in the slice: {sorted(hca_rates)}")
    compress_rates = {CSA: int(rc.get("compress_rate_csa", 4)), HCA: hca_rate}

    if "mlp_layer_types" in rc:
        mlp_layer_types = list(rc["mlp_layer_types"][:L])
    else:
        n_hash = int(rc.get("num_hash_layers", 0))
        mlp_layer_types = ["hash_moe" if i < n_hash else "moe" for i in range(L)]

    k = int(rc["num_experts_per_tok"])
    if experts < k:
        raise ValueError(f"--experts {experts} < num_experts_per_tok {k}")

    rs = dict(rc.get("rope_scaling") or {})
    rope_type = rs.pop("rope_type", rs.pop("type", "default"))
    rope_parameters = {"rope_type": rope_type, **rs}

    head_dim = int(rc["head_dim"])
    kw = dict(
        vocab_size=rc["vocab_size"], hidden_size=rc["hidden_size"], num_hidden_layers=L,
        num_attention_heads=rc["num_attention_heads"], num_key_value_heads=rc.get("num_key_value_heads", 1),
        head_dim=head_dim, partial_rotary_factor=int(rc["qk_rope_head_dim"]) / head_dim,
        q_lora_rank=rc["q_lora_rank"], o_groups=rc["o_groups"], o_lora_rank=rc["o_lora_rank"],
        sliding_window=rc["sliding_window"],
        layer_types=layer_types, compress_rates=compress_rates,
        index_n_heads=rc["index_n_heads"], index_head_dim=rc["index_head_dim"], index_topk=rc["index_topk"],
        mlp_layer_types=mlp_layer_types,
        n_routed_experts=int(experts), num_experts_per_tok=k, n_shared_experts=rc.get("n_shared_experts", 1),
        moe_intermediate_size=rc["moe_intermediate_size"], routed_scaling_factor=rc["routed_scaling_factor"],
        scoring_func=rc.get("scoring_func", "sqrtsoftplus"), norm_topk_prob=rc.get("norm_topk_prob", True),
        swiglu_limit=rc.get("swiglu_limit", 10.0),
        hc_mult=rc["hc_mult"], hc_sinkhorn_iters=rc.get("hc_sinkhorn_iters", 20), hc_eps=rc.get("hc_eps", 1e-6),
        rms_norm_eps=rc.get("rms_norm_eps", 1e-6),
        rope_theta=rc.get("rope_theta", 10000.0), compress_rope_theta=rc.get("compress_rope_theta", 160000.0),
        max_position_embeddings=rc.get("max_position_embeddings", 1048576), rope_parameters=rope_parameters,
        num_nextn_predict_layers=0, hidden_act=rc.get("hidden_act", "silu"),
        tie_word_embeddings=bool(rc.get("tie_word_embeddings", False)),
        bos_token_id=rc.get("bos_token_id", 0), eos_token_id=rc.get("eos_token_id", 1),
        attention_bias=bool(rc.get("attention_bias", False)), mlp_bias=bool(rc.get("mlp_bias", False)),
    )
    cfg = DeepseekV4Config(**kw)
    # the slice must survive HF's __post_init__ unchanged
    assert cfg.layer_types == layer_types, (cfg.layer_types, layer_types)
    assert cfg.mlp_layer_types == mlp_layer_types, (cfg.mlp_layer_types, mlp_layer_types)
    assert cfg.num_hidden_layers == L and cfg.n_routed_experts == experts
    return cfg


# ------------------------------------------------------------------------------------------------
# Model: built directly on the GPU in bf16, HF's weight init skipped, then filled with random values


def _no_init_context():
    for mod in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            m = __import__(mod, fromlist=["no_init_weights"])
            return m.no_init_weights(), mod + ".no_init_weights"
        except Exception:
            continue
    return contextlib.nullcontext(), "none (HF init runs on the GPU)"


@torch.no_grad()
def randomise(model, seed):
    """Small finite random values for every parameter and persistent buffer (bf16 storage).

    Linear/embedding/expert weights ~ N(0, 1/fan_in) so activations stay O(1) through the slice, norms
    near 1, sinks/biases/mHC parameters as in tools/gen_golden.py, tid2eid rows of k distinct experts
    (the hash layers must route over k different experts, as the dsv4 bench checkpoint does).
    """
    gen = torch.Generator(device="cuda").manual_seed(seed)
    filled = 0
    for mod_name, mod in model.named_modules():
        tname = type(mod).__name__
        for pname, p in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            d = p.data
            if "inv_freq" in pname:
                continue  # rope tables, computed in the constructor
            if pname == "tid2eid":
                n_exp, k = int(mod.num_experts), int(d.shape[1])
                rows = torch.rand(d.shape[0], n_exp, generator=gen, device=d.device).argsort(dim=-1)[:, :k]
                d.copy_(rows.to(d.dtype))
                filled += 1
                continue
            if not d.is_floating_point():
                print(f"# note: left non-float tensor {mod_name}.{pname} {d.dtype} as constructed")
                continue

            def normal(mean, std):
                d.copy_((torch.randn(d.shape, generator=gen, device=d.device, dtype=torch.float32) * std
                         + mean).to(d.dtype))

            if tname == "DeepseekV4RMSNorm" and pname == "weight":
                normal(1.0, 0.1)
            elif pname in ("scale", "hc_scale"):
                d.copy_((torch.rand(d.shape, generator=gen, device=d.device) + 0.5).to(d.dtype))
            elif pname in ("base", "hc_base"):
                normal(0.0, 0.5)
            elif pname in ("fn", "hc_fn"):
                normal(0.0, 0.05)
            elif pname == "sinks":
                normal(0.0, 1.0)
            elif pname == "position_bias":
                normal(0.0, 0.5)
            elif pname == "e_score_correction_bias":
                normal(0.0, 0.1)
            elif d.dim() >= 2:
                normal(0.0, float(d.shape[-1]) ** -0.5)
            else:
                normal(0.0, 0.05)
            filled += 1
    bad = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise RuntimeError(f"non-finite values after randomise: {bad[:5]}")
    return filled


def build_model(cfg, seed, experts_impl):
    try:
        cfg._attn_implementation = "eager"
    except Exception as exc:
        print(f"# note: could not preset config._attn_implementation: {exc!r}")
    no_init, no_init_name = _no_init_context()
    prev = torch.get_default_dtype()
    t0 = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"), no_init:
            model = DeepseekV4ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    model.eval()
    off = sorted({str(t.device) for t in model.parameters() if t.device.type != "cuda"})
    if off:
        raise RuntimeError(f"parameters not on the GPU: {off}")
    if getattr(model.config, "_attn_implementation", None) != "eager" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    if experts_impl:
        model.set_experts_implementation(experts_impl)
    torch.cuda.synchronize()
    t_build = time.perf_counter() - t0
    n = randomise(model, seed)
    torch.cuda.synchronize()
    t_fill = time.perf_counter() - t0 - t_build
    return model, t_build, t_fill, n, no_init_name


def experts_impl_name(model):
    try:
        got = model.get_experts_implementation()
        if isinstance(got, dict):
            return ",".join(f"{k}={v}" if k else str(v) for k, v in got.items())
        return str(got)
    except Exception:
        return str(getattr(model.config, "_experts_implementation", "unknown"))


# ------------------------------------------------------------------------------------------------
# Timing


def sync():
    torch.cuda.synchronize()


def set_experts_impl(model, impl):
    if impl and experts_impl_name(model) != impl:
        model.set_experts_implementation(impl)


def run_case(model, cfg, ctx, steps, warmup, chunk, seed, prefill_impl=None, decode_impl=None):
    """Prefill ctx random ids into a fresh DynamicCache, then warmup + steps greedy decode steps.

    Returns (prefill seconds, per-step ms of the timed steps, decode logits finite, cache length)."""
    gen = torch.Generator(device="cuda").manual_seed(seed + ctx)
    ids = torch.randint(0, cfg.vocab_size, (1, ctx), generator=gen, device="cuda")
    cache = DynamicCache(config=model.config)
    chunk = ctx if chunk <= 0 else chunk
    set_experts_impl(model, prefill_impl)
    sync()
    t0 = time.perf_counter()
    out = None
    for s in range(0, ctx, chunk):
        out = model(input_ids=ids[:, s:s + chunk], past_key_values=cache, use_cache=True, logits_to_keep=1)
    nxt = out.logits[:, -1].argmax(dim=-1, keepdim=True)
    sync()
    prefill_s = time.perf_counter() - t0
    if not bool(torch.isfinite(out.logits).all()):
        raise RuntimeError("non-finite prefill logits")
    out = None
    set_experts_impl(model, decode_impl)
    ms = []
    for i in range(warmup + steps):
        sync()
        ts = time.perf_counter()
        out = model(input_ids=nxt, past_key_values=cache, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        sync()
        t = (time.perf_counter() - ts) * 1e3
        if i >= warmup:
            ms.append(t)
    finite = out is None or bool(torch.isfinite(out.logits).all())
    set_experts_impl(model, prefill_impl)
    seen = cache.get_seq_length() if hasattr(cache, "get_seq_length") else -1
    del out, cache
    return prefill_s, ms, finite, seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="released-style config.json (real dimensions)")
    ap.add_argument("--layers", type=int, default=4, help="first N layers of the config (as dsv4 bench)")
    ap.add_argument("--experts", type=int, default=64, help="routed experts per layer (as dsv4 bench)")
    ap.add_argument("--ctx", type=int, nargs="+", default=[1024], help="contexts to prefill before decode")
    ap.add_argument("--steps", type=int, default=20, help="decode steps timed per context (median)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed decode steps before the timed ones")
    ap.add_argument("--prefill-chunk", type=int, default=0,
                    help="prefill in chunks of this many tokens (0: one forward; eager attention "
                         "materialises [heads, C, C] scores, so long contexts may need chunks)")
    ap.add_argument("--experts-impl", default=None,
                    help="transformers experts backend for the prefill (eager, grouped_mm, batched_mm, ...); "
                         "default: what transformers picks for a directly constructed model")
    ap.add_argument("--decode-experts-impl", default="auto",
                    help="experts backend for the decode steps; 'auto' does what generate() does on a GPU "
                         "(grouped_mm switches to batched_mm for decode), 'same' keeps the prefill backend")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0 or min(args.ctx) < 1:
        ap.error("--steps must be >= 1, --warmup >= 0 and every --ctx >= 1")

    torch.set_grad_enabled(False)
    if not torch.cuda.is_available():
        print("# hf bench: no CUDA device")
        for ctx in args.ctx:
            print(f"hf decode b=1 ctx={ctx} layers={args.layers} experts={args.experts}  FAILED: no CUDA device")
        return 1
    dev = torch.cuda.get_device_properties(0)
    print(f"# hf bench: python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"transformers {transformers.__version__}, GPU {dev.name} ({dev.total_memory / 2**30:.1f} GiB)")

    with open(args.config) as f:
        rc = json.load(f)
    cfg = hf_config_from_released(rc, args.layers, args.experts)
    L = cfg.num_hidden_layers
    print(f"# slice: {L} layers of {os.path.relpath(args.config)}, {cfg.n_routed_experts} routed experts/layer "
          f"(top {cfg.num_experts_per_tok}), hidden {cfg.hidden_size}, heads {cfg.num_attention_heads}x"
          f"{cfg.head_dim}, vocab {cfg.vocab_size}")
    print(f"# layer_types {cfg.layer_types}")
    print(f"# mlp_layer_types {cfg.mlp_layer_types}, compress_rates {cfg.compress_rates}")
    print(f"# rope_parameters {json.dumps(cfg.rope_parameters, sort_keys=True)}")

    try:
        model, t_build, t_fill, n_filled, no_init_name = build_model(cfg, args.seed, args.experts_impl)
    except Exception as exc:
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        for ctx in args.ctx:
            print(f"hf decode b=1 ctx={ctx} layers={L} experts={cfg.n_routed_experts}  FAILED: model build: {reason}")
        return 1
    n_params = sum(p.numel() for p in model.parameters())
    w_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters()})
    impl = experts_impl_name(model)
    decode_impl = args.decode_experts_impl
    if decode_impl == "same":
        decode_impl = impl
    elif decode_impl == "auto":
        decode_impl = "batched_mm" if impl == "grouped_mm" else impl
    impl_note = impl if decode_impl == impl else f"{impl} prefill, {decode_impl} decode"
    print(f"# model: {n_params / 1e9:.3f} B params, {w_bytes / 2**30:.2f} GiB ({'/'.join(dtypes)}), built in "
          f"{t_build:.1f} s (init skipped by {no_init_name}), {n_filled} tensors randomised in {t_fill:.1f} s")
    print(f"# attention {model.config._attn_implementation}, experts backend {impl_note}, "
          f"memory allocated {torch.cuda.memory_allocated() / 2**30:.2f} GiB")
    sys.stdout.flush()

    try:  # one-time CUDA/cuBLAS/allocator set-up, so the first case's prefill time does not carry it
        t0 = time.perf_counter()
        n_warm = min(256, max(args.ctx))
        run_case(model, cfg, n_warm, 0, 2, 0, args.seed + 1, impl, decode_impl)
        print(f"# warm-up ({n_warm}-token prefill + 2 decode steps): {time.perf_counter() - t0:.2f} s")
    except Exception as exc:
        print(f"# warm-up failed: {type(exc).__name__}: {exc}")
    rc_all, peak_all = 0, 0.0
    for ctx in args.ctx:
        tag = f"hf decode b=1 ctx={ctx} layers={L} experts={cfg.n_routed_experts}"
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            prefill_s, ms, finite, seen = run_case(model, cfg, ctx, args.steps, args.warmup, args.prefill_chunk,
                                                   args.seed, impl, decode_impl)
            t_ms = statistics.median(ms)
            peak = torch.cuda.max_memory_allocated() / 2**30
            note = "" if finite else ", NON-FINITE decode logits"
            print(f"{tag}  {t_ms:8.3f} ms/step  {1e3 / t_ms:7.1f} tok/s  (prefill {ctx} tok: {prefill_s:.2f} s, "
                  f"{ctx / prefill_s:.0f} tok/s; min {min(ms):.3f} max {max(ms):.3f} ms over {len(ms)} steps; "
                  f"cache len {seen}; peak GPU memory {peak:.2f} GiB; experts {impl_note}{note})")
        except Exception as exc:
            try:
                set_experts_impl(model, impl)
            except Exception:
                pass
            msg = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {msg[0] if msg else ''}"[:300]
            if not isinstance(exc, torch.cuda.OutOfMemoryError):
                traceback.print_exc()
            print(f"{tag}  FAILED: {reason}")
            rc_all = 1
        peak_all = max(peak_all, torch.cuda.max_memory_allocated() / 2**30)
        sys.stdout.flush()
    print(f"# peak GPU memory allocated (weights + cache + activations), worst case: {peak_all:.2f} GiB")
    return rc_all


if __name__ == "__main__":
    sys.exit(main())
