#!/usr/bin/env python3
"""Generate the tiny DeepSeek-V4 golden fixtures (tests/fixtures/tiny_a, tiny_b) from HF transformers.

The oracle is transformers' DeepseekV4ForCausalLM (fp32, CPU, eager attention) with random weights
per docs/dsv4-architecture.md §15, and the indexer top-k replaced by the dsv4 tie rule (§6.6).
Needs torch, transformers (>= 5.17 with deepseek_v4), safetensors; runs on the device machine.
See tests/fixtures/README.md for the layout and the exact regeneration command.
"""

import argparse
import contextlib
import json
import os
import sys
import traceback

import torch
from safetensors.torch import save_file

import transformers
from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
from transformers.cache_utils import DynamicCache
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as mdl

torch.set_grad_enabled(False)

# ------------------------------------------------------------------------------------------------
# Configs

ROPE_YARN = {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 65536,
             "beta_fast": 32, "beta_slow": 1}

SWA, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"


def config_tiny_a():
    # Exactly the §15 tiny configuration.
    return DeepseekV4Config(
        vocab_size=1024, hidden_size=256, num_hidden_layers=5,
        num_attention_heads=4, head_dim=128, partial_rotary_factor=0.5,
        q_lora_rank=128, o_groups=2, o_lora_rank=64,
        sliding_window=8,
        layer_types=[SWA, SWA, CSA, HCA, CSA],
        compress_rates={CSA: 4, HCA: 8},
        index_n_heads=16, index_head_dim=128, index_topk=4,
        mlp_layer_types=["hash_moe", "hash_moe", "hash_moe", "moe", "moe"],
        n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=128,
        routed_scaling_factor=1.5, scoring_func="sqrtsoftplus", swiglu_limit=10.0,
        hc_mult=4, hc_sinkhorn_iters=20, hc_eps=1e-6, rms_norm_eps=1e-6,
        rope_theta=10000.0, compress_rope_theta=160000.0, max_position_embeddings=1048576,
        rope_parameters=dict(ROPE_YARN),
    )


def config_tiny_b():
    return DeepseekV4Config(
        vocab_size=512, hidden_size=128, num_hidden_layers=4,
        num_attention_heads=2, head_dim=128, partial_rotary_factor=0.5,
        q_lora_rank=128, o_groups=1, o_lora_rank=128,
        sliding_window=16,
        layer_types=[CSA, HCA, SWA, CSA],
        compress_rates={CSA: 4, HCA: 16},
        index_n_heads=4, index_head_dim=128, index_topk=3,
        mlp_layer_types=["hash_moe", "moe", "moe", "moe"],
        n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=128,
        routed_scaling_factor=2.5, scoring_func="sqrtsoftplus", swiglu_limit=10.0,
        hc_mult=2, hc_sinkhorn_iters=20, hc_eps=1e-6, rms_norm_eps=1e-6,
        rope_theta=10000.0, compress_rope_theta=160000.0, max_position_embeddings=1048576,
        rope_parameters=dict(ROPE_YARN),
    )


def released_config_tiny_b(cfg):
    """Released-style config.json (key set of the DeepSeek-V4 checkpoints' config.json).

    HF's legacy conversion only knows ratios 0/4/128, so HCA is written as 128 in compress_ratios
    and the real rate goes into the legacy key compress_rate_hca (HF folds it into compress_rates).
    No quantization_config / expert_dtype: the fixture weights are plain bf16/fp32.
    num_nextn_predict_layers is 0: the fixture carries no mtp.* tensors.
    """
    ratio_of = {SWA: 0, CSA: 4, HCA: 128}
    n_hash = sum(1 for t in cfg.mlp_layer_types if t == "hash_moe")
    assert cfg.mlp_layer_types == ["hash_moe"] * n_hash + ["moe"] * (cfg.num_hidden_layers - n_hash)
    return {
        "architectures": ["DeepseekV4ForCausalLM"],
        "model_type": "deepseek_v4",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": 1,
        "head_dim": cfg.head_dim,
        "qk_rope_head_dim": int(cfg.head_dim * cfg.partial_rotary_factor),
        "q_lora_rank": cfg.q_lora_rank,
        "o_groups": cfg.o_groups,
        "o_lora_rank": cfg.o_lora_rank,
        "sliding_window": cfg.sliding_window,
        "compress_ratios": [ratio_of[t] for t in cfg.layer_types] + [0],
        "compress_rate_hca": cfg.compress_rates[HCA],
        "rope_theta": 10000.0,
        "compress_rope_theta": 160000.0,
        "rope_scaling": {"type": "yarn", "factor": 16.0, "original_max_position_embeddings": 65536,
                         "beta_fast": 32, "beta_slow": 1},
        "max_position_embeddings": 1048576,
        "index_n_heads": cfg.index_n_heads,
        "index_head_dim": cfg.index_head_dim,
        "index_topk": cfg.index_topk,
        "n_routed_experts": cfg.n_routed_experts,
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "n_shared_experts": 1,
        "moe_intermediate_size": cfg.moe_intermediate_size,
        "scoring_func": "sqrtsoftplus",
        "routed_scaling_factor": cfg.routed_scaling_factor,
        "norm_topk_prob": True,
        "topk_method": "noaux_tc",
        "num_hash_layers": n_hash,
        "swiglu_limit": 10.0,
        "hc_mult": cfg.hc_mult,
        "hc_sinkhorn_iters": 20,
        "hc_eps": 1e-06,
        "rms_norm_eps": 1e-06,
        "num_nextn_predict_layers": 0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": "bfloat16",
        "attention_bias": False,
        "mlp_bias": False,
    }


# ------------------------------------------------------------------------------------------------
# Indexer top-k tie rule (§6.6): stable descending sort, -0.0 == +0.0, lower index wins ties.

TIE_STATS = {"calls": 0, "rows": 0, "rows_differing_from_torch_topk": 0, "boundary_ties": 0}
_orig_tensor_topk = torch.Tensor.topk


def _stable_topk(self, k, dim=-1, largest=True, sorted=True):
    assert largest and dim in (-1, self.dim() - 1), "indexer top-k: unexpected call"
    x = torch.where(self == 0, torch.zeros_like(self), self)  # -0.0 -> +0.0
    vals, idx = torch.sort(x, dim=-1, descending=True, stable=True)
    vals, idx = vals[..., :k], idx[..., :k]
    # bookkeeping: how often would torch.topk have picked a different set of causally valid
    # (finite-score) entries, and how often is there an exact tie at the k-th place?
    TIE_STATS["calls"] += 1
    if k > 0 and self.numel() > 0:
        ref = _orig_tensor_topk(self, k, dim=-1).indices
        def valid_set(ix):
            ok = torch.isfinite(torch.gather(self, -1, ix))
            return torch.sort(torch.where(ok, ix, torch.full_like(ix, -1)), dim=-1).values
        TIE_STATS["rows"] += ref.numel() // k
        TIE_STATS["rows_differing_from_torch_topk"] += int((valid_set(idx) != valid_set(ref)).any(-1).sum())
        full = torch.sort(x, dim=-1, descending=True, stable=True).values
        if full.shape[-1] > k:
            kth, nxt = full[..., k - 1], full[..., k]
            TIE_STATS["boundary_ties"] += int(((kth == nxt) & torch.isfinite(kth)).sum())
    return torch.return_types.topk((vals, idx))


_orig_indexer_forward = mdl.DeepseekV4Indexer.forward


def _indexer_forward_tie_rule(self, *args, **kwargs):
    saved = torch.Tensor.topk
    torch.Tensor.topk = _stable_topk
    try:
        return _orig_indexer_forward(self, *args, **kwargs)
    finally:
        torch.Tensor.topk = saved


@contextlib.contextmanager
def indexer_tie_rule(enabled=True):
    if enabled:
        mdl.DeepseekV4Indexer.forward = _indexer_forward_tie_rule
    try:
        yield
    finally:
        mdl.DeepseekV4Indexer.forward = _orig_indexer_forward


# ------------------------------------------------------------------------------------------------
# Randomisation (§15)

FP32_CLASSES = ("hc", "sink", "ape", "gate_bias")  # stored fp32; everything else float -> bf16


def randomise(model, seed):
    """Fill every parameter/persistent buffer per §15, then round floats to bf16 values.

    Returns {state_dict name: storage class} where class is one of
    'bf16', 'hc', 'sink', 'ape', 'gate_bias', 'i64'.
    """
    gen = torch.Generator().manual_seed(seed)
    cls_of = {}

    def normal_(t, mean, std):
        t.copy_(torch.randn(t.shape, generator=gen) * std + mean)

    for mod_name, mod in model.named_modules():
        prefix = mod_name + "." if mod_name else ""
        tname = type(mod).__name__
        for pname, p in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            full = prefix + pname
            if pname.endswith("inv_freq"):
                continue  # non-persistent rope tables
            d = p.data
            if tname == "DeepseekV4RMSNorm" and pname == "weight":
                normal_(d, 1.0, 0.1); cls_of[full] = "bf16"
            elif tname == "DeepseekV4HyperConnection":
                if pname == "fn":
                    normal_(d, 0.0, 0.05)
                elif pname == "base":
                    normal_(d, 0.0, 0.5)
                elif pname == "scale":
                    d.copy_(torch.rand(d.shape, generator=gen) + 0.5)
                else:
                    raise KeyError(full)
                cls_of[full] = "hc"
            elif tname == "DeepseekV4HyperHead":
                if pname == "hc_fn":
                    normal_(d, 0.0, 0.05)
                elif pname == "hc_base":
                    normal_(d, 0.0, 0.5)
                elif pname == "hc_scale":
                    d.copy_(torch.rand(d.shape, generator=gen) + 0.5)
                else:
                    raise KeyError(full)
                cls_of[full] = "hc"
            elif pname == "sinks":
                normal_(d, 0.0, 1.0); cls_of[full] = "sink"
            elif pname == "position_bias":
                normal_(d, 0.0, 0.5); cls_of[full] = "ape"
            elif pname == "e_score_correction_bias":
                normal_(d, 0.0, 0.1); cls_of[full] = "gate_bias"
            elif pname == "tid2eid":
                n_exp = mod.num_experts
                rows = [torch.randperm(n_exp, generator=gen)[: d.shape[1]] for _ in range(d.shape[0])]
                d.copy_(torch.stack(rows).to(d.dtype)); cls_of[full] = "i64"
            elif d.is_floating_point():
                normal_(d, 0.0, 0.05); cls_of[full] = "bf16"
            else:
                raise KeyError(f"unhandled tensor {full} {d.dtype}")
            if d.is_floating_point():
                d.copy_(d.bfloat16().float())
    sd = model.state_dict()
    missing = set(sd) - set(cls_of)
    assert not missing, f"state_dict entries not randomised: {sorted(missing)}"
    return cls_of


def storage_tensor(t, cls):
    if cls == "i64":
        return t.to(torch.int64).contiguous()
    if cls == "bf16":
        return t.to(torch.bfloat16).contiguous()
    return t.to(torch.float32).contiguous()


# ------------------------------------------------------------------------------------------------
# HF name -> released name (§3.1 / §3.2)

_LAYER_MAP = {
    "attn_hc.fn": "hc_attn_fn", "attn_hc.base": "hc_attn_base", "attn_hc.scale": "hc_attn_scale",
    "ffn_hc.fn": "hc_ffn_fn", "ffn_hc.base": "hc_ffn_base", "ffn_hc.scale": "hc_ffn_scale",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_a_proj.weight": "attn.wq_a.weight",
    "self_attn.q_a_norm.weight": "attn.q_norm.weight",
    "self_attn.q_b_proj.weight": "attn.wq_b.weight",
    "self_attn.kv_proj.weight": "attn.wkv.weight",
    "self_attn.kv_norm.weight": "attn.kv_norm.weight",
    "self_attn.o_a_proj.weight": "attn.wo_a.weight",
    "self_attn.o_b_proj.weight": "attn.wo_b.weight",
    "self_attn.sinks": "attn.attn_sink",
    "self_attn.compressor.kv_proj.weight": "attn.compressor.wkv.weight",
    "self_attn.compressor.gate_proj.weight": "attn.compressor.wgate.weight",
    "self_attn.compressor.position_bias": "attn.compressor.ape",
    "self_attn.compressor.kv_norm.weight": "attn.compressor.norm.weight",
    "self_attn.compressor.indexer.kv_proj.weight": "attn.indexer.compressor.wkv.weight",
    "self_attn.compressor.indexer.gate_proj.weight": "attn.indexer.compressor.wgate.weight",
    "self_attn.compressor.indexer.position_bias": "attn.indexer.compressor.ape",
    "self_attn.compressor.indexer.kv_norm.weight": "attn.indexer.compressor.norm.weight",
    "self_attn.compressor.indexer.q_b_proj.weight": "attn.indexer.wq_b.weight",
    "self_attn.compressor.indexer.scorer.weights_proj.weight": "attn.indexer.weights_proj.weight",
    "mlp.gate.weight": "ffn.gate.weight",
    "mlp.gate.e_score_correction_bias": "ffn.gate.bias",
    "mlp.gate.tid2eid": "ffn.gate.tid2eid",
    "mlp.shared_experts.gate_proj.weight": "ffn.shared_experts.w1.weight",
    "mlp.shared_experts.up_proj.weight": "ffn.shared_experts.w3.weight",
    "mlp.shared_experts.down_proj.weight": "ffn.shared_experts.w2.weight",
}
_GLOBAL_MAP = {
    "model.embed_tokens.weight": "embed.weight",
    "lm_head.weight": "head.weight",
    "model.norm.weight": "norm.weight",
    "model.hc_head.hc_fn": "hc_head_fn",
    "model.hc_head.hc_base": "hc_head_base",
    "model.hc_head.hc_scale": "hc_head_scale",
}


def to_released(sd, cls_of, inter):
    out = {}
    for name, t in sd.items():
        cls = cls_of[name]
        if name in _GLOBAL_MAP:
            out[_GLOBAL_MAP[name]] = storage_tensor(t, cls)
            continue
        assert name.startswith("model.layers."), name
        rest = name[len("model.layers."):]
        il, sub = rest.split(".", 1)
        pre = f"layers.{il}."
        if sub == "mlp.experts.gate_up_proj":  # [E, 2I, D]
            assert t.shape[1] == 2 * inter
            for e in range(t.shape[0]):
                out[f"{pre}ffn.experts.{e}.w1.weight"] = storage_tensor(t[e, :inter], cls)
                out[f"{pre}ffn.experts.{e}.w3.weight"] = storage_tensor(t[e, inter:], cls)
        elif sub == "mlp.experts.down_proj":  # [E, D, I]
            for e in range(t.shape[0]):
                out[f"{pre}ffn.experts.{e}.w2.weight"] = storage_tensor(t[e], cls)
        else:
            out[pre + _LAYER_MAP[sub]] = storage_tensor(t, cls)
    return out


# ------------------------------------------------------------------------------------------------
# Running HF

def build_model(cfg, seed):
    try:
        model = DeepseekV4ForCausalLM._from_config(cfg, attn_implementation="eager")
    except Exception as exc:  # older/newer API
        print("  _from_config(attn_implementation=eager) failed:", exc)
        model = DeepseekV4ForCausalLM(cfg)
    model = model.float().eval()
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr(), "lm_head tied"
    cls_of = randomise(model, seed)
    return model, cls_of


def full_forward(model, ids, capture=True):
    """No-cache forward; returns (logits [T,V], dict of captured per-layer tensors)."""
    cap, hooks = {}, []
    if capture:
        m = model.model

        def put(key, fn):
            def hook(_mod, _inp, out):
                o = fn(out).detach()[0]
                cap[key] = o.float().clone() if o.is_floating_point() else o.clone()
            return hook

        hooks.append(m.embed_tokens.register_forward_hook(put("hidden.embed", lambda o: o)))
        for il, layer in enumerate(m.layers):
            hooks.append(layer.register_forward_hook(put(f"hidden.{il}", lambda o: o)))
            hooks.append(layer.self_attn.register_forward_hook(put(f"attn.{il}", lambda o: o[0])))
            hooks.append(layer.mlp.register_forward_hook(put(f"mlp.{il}", lambda o: o)))
            comp = layer.self_attn.compressor
            if comp is not None:
                hooks.append(comp.register_forward_hook(put(f"compressed.{il}", lambda o: o[0][:, 0])))
                if hasattr(comp, "indexer"):
                    hooks.append(comp.indexer.register_forward_hook(put(f"indexer_topk.{il}", lambda o: o)))
            hooks.append(layer.mlp.gate.register_forward_hook(put(f"_route.{il}", lambda o: o[2][None])))
    try:
        out = model(input_ids=ids[None], use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return out.logits[0].float(), cap


def chunked_forward(model, ids, chunks):
    cache = DynamicCache(config=model.config)
    logits, pos = [], 0
    for n in chunks:
        out = model(input_ids=ids[None, pos:pos + n], past_key_values=cache, use_cache=True)
        logits.append(out.logits[0].float())
        pos += n
    assert pos == ids.numel()
    return torch.cat(logits, 0)


def greedy(model, ids, n_new):
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids[None], past_key_values=cache, use_cache=True)
    toks = []
    nxt = int(out.logits[0, -1].argmax())
    for _ in range(n_new):
        toks.append(nxt)
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=cache, use_cache=True)
        nxt = int(out.logits[0, -1].argmax())
    return torch.tensor(toks, dtype=torch.int64)


def rel_err_rows(a, b):
    """max over rows of ||a-b|| / ||b||, and max abs diff."""
    num = (a - b).norm(dim=-1)
    den = b.norm(dim=-1).clamp_min(1e-30)
    return float((num / den).max()), float((a - b).abs().max())


# ------------------------------------------------------------------------------------------------

def generate(name, cfg, seed, seq_len, chunk_plan, out_dir, released):
    print(f"\n===== {name}: seed {seed}, T = {seq_len}, released-names = {released} =====")
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    print("  layer_types     :", cfg.layer_types)
    print("  mlp_layer_types :", cfg.mlp_layer_types)
    print("  compress_rates  :", cfg.compress_rates)
    print("  rope_parameters :", json.dumps(cfg.rope_parameters, sort_keys=True))

    model, cls_of = build_model(cfg, seed)
    print("  attn impl       :", model.config._attn_implementation)
    sd = model.state_dict()
    print(f"  state_dict      : {len(sd)} entries, {sum(t.numel() for t in sd.values())} elements")

    ids = torch.randint(0, cfg.vocab_size, (seq_len,), generator=torch.Generator().manual_seed(seed + 1))

    # ---- weights + config
    if released:
        tensors = to_released(sd, cls_of, cfg.moe_intermediate_size)
        rcfg = released_config_tiny_b(cfg)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(rcfg, f, indent=2)
            f.write("\n")
    else:
        tensors = {k: storage_tensor(v, cls_of[k]) for k, v in sd.items()}
        cfg.save_pretrained(d)
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    # every stored value must equal the fp32 model value (bf16-rounded already)
    dtypes = {}
    for k, v in tensors.items():
        dtypes[str(v.dtype)] = dtypes.get(str(v.dtype), 0) + 1
    print("  stored tensors  :", len(tensors), dtypes)

    # config round trip
    cfg2 = DeepseekV4Config.from_pretrained(d)
    assert cfg2.layer_types == cfg.layer_types, (cfg2.layer_types, cfg.layer_types)
    assert cfg2.mlp_layer_types == cfg.mlp_layer_types, (cfg2.mlp_layer_types, cfg.mlp_layer_types)
    assert cfg2.compress_rates == cfg.compress_rates, (cfg2.compress_rates, cfg.compress_rates)
    assert abs(cfg2.partial_rotary_factor - cfg.partial_rotary_factor) < 1e-12
    keys = ("rope_type", "rope_theta", "factor", "original_max_position_embeddings", "beta_fast",
            "beta_slow", "partial_rotary_factor", "attention_factor")
    for lbl in ("main", "compress"):
        a = {k: cfg.rope_parameters[lbl].get(k) for k in keys}
        b = {k: cfg2.rope_parameters[lbl].get(k) for k in keys}
        assert a == b, (lbl, a, b)
    for k in ("hidden_size", "num_attention_heads", "head_dim", "q_lora_rank", "o_groups", "o_lora_rank",
              "sliding_window", "index_n_heads", "index_head_dim", "index_topk", "n_routed_experts",
              "num_experts_per_tok", "moe_intermediate_size", "routed_scaling_factor", "hc_mult",
              "vocab_size", "num_hidden_layers", "compress_rope_theta", "rope_theta"):
        assert getattr(cfg2, k) == getattr(cfg, k), (k, getattr(cfg2, k), getattr(cfg, k))
    print("  config round trip (DeepseekV4Config.from_pretrained): OK")

    # ---- golden full forward (tie rule on)
    TIE_STATS.update(calls=0, rows=0, rows_differing_from_torch_topk=0, boundary_ties=0)
    with indexer_tie_rule():
        logits, cap = full_forward(model, ids)
    print(f"  indexer top-k calls {TIE_STATS['calls']}, rows {TIE_STATS['rows']}, exact ties at the k-th place "
          f"{TIE_STATS['boundary_ties']}, rows where torch.topk keeps another valid set: "
          f"{TIE_STATS['rows_differing_from_torch_topk']}")
    with indexer_tie_rule(False):
        logits_plain, _ = full_forward(model, ids, capture=False)
    r, a = rel_err_rows(logits_plain, logits)
    print(f"  plain torch.topk full forward vs tie rule: max rel {r:.3e}, max abs {a:.3e}")

    # ---- sanity (2): layer kinds and routing kinds
    kinds = sorted(set(cfg.layer_types))
    print("  layer kinds present:", kinds)
    assert set(kinds) == {SWA, CSA, HCA}
    for il, lt in enumerate(cfg.layer_types):
        route = cap.pop(f"_route.{il}")[0]
        counts = torch.bincount(route.reshape(-1), minlength=cfg.n_routed_experts).tolist()
        is_hash = isinstance(model.model.layers[il].mlp.gate, mdl.DeepseekV4HashRouter)
        print(f"  layer {il}: {lt:30s} {cfg.mlp_layer_types[il]:8s} router={'hash' if is_hash else 'score'}"
              f" expert use {counts}")
        assert is_hash == (cfg.mlp_layer_types[il] == "hash_moe")
    assert any(t == "hash_moe" for t in cfg.mlp_layer_types) and any(t == "moe" for t in cfg.mlp_layer_types)

    # ---- sanity (3): compressed entries / real top-k selection
    for il, lt in enumerate(cfg.layer_types):
        if lt == SWA:
            continue
        m = cfg.compress_rates[lt]
        n = cap[f"compressed.{il}"].shape[0]
        line = f"  layer {il} {lt}: ratio {m}, compressed entries {n} (expect {seq_len // m})"
        assert n == seq_len // m
        if lt == CSA:
            sel = cap[f"indexer_topk.{il}"]
            avail = (torch.arange(seq_len) + 1) // m
            n_sparse = int((avail > cfg.index_topk).sum())
            valid = (sel >= 0).sum(-1)
            assert torch.equal(valid, avail.clamp(max=cfg.index_topk)), "indexer valid count mismatch"
            assert int((sel >= avail[:, None]).sum()) == 0
            line += f"; index_topk {cfg.index_topk}; queries with > topk available: {n_sparse}"
            assert n > cfg.index_topk and n_sparse > 0
        print(line)

    # ---- sanity (1): chunked prefill / decode with cache vs full forward
    with indexer_tie_rule():
        plan = list(chunk_plan) + [seq_len - sum(chunk_plan)]
        lc = chunked_forward(model, ids, plan)
        r1, a1 = rel_err_rows(lc, logits)
        print(f"  chunked prefill {plan}: max rel err {r1:.3e}, max abs {a1:.3e}")
        ld = chunked_forward(model, ids, [1] * seq_len)
        r2, a2 = rel_err_rows(ld, logits)
        print(f"  token-by-token decode: max rel err {r2:.3e}, max abs {a2:.3e}")
        lp = chunked_forward(model, ids, [seq_len])
        r3, a3 = rel_err_rows(lp, logits)
        print(f"  one-chunk prefill with cache: max rel err {r3:.3e}, max abs {a3:.3e}")
        toks = greedy(model, ids, 32)
        print("  greedy 32 tokens:", toks.tolist())
    print(f"  logits scale: rms {float(logits.pow(2).mean().sqrt()):.3f}, max |.| {float(logits.abs().max()):.3f}")
    ok = max(r1, r2, r3) < 1e-4

    # ---- reload through HF's own loader (checks names + config), compare logits
    try:
        m2, info = DeepseekV4ForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                         output_loading_info=True)
        m2.eval()
        bad = {k: v for k, v in info.items() if v}
        print("  from_pretrained loading info (non-empty):", bad if bad else "none")
        with indexer_tie_rule():
            l2, _ = full_forward(m2, ids, capture=False)
        r4, a4 = rel_err_rows(l2, logits)
        print(f"  from_pretrained({name}) vs generator model: max rel {r4:.3e}, max abs {a4:.3e}")
        ok = ok and r4 < 1e-6
    except Exception as exc:
        print("  from_pretrained reload FAILED:", repr(exc))
        ok = False

    # ---- golden file
    g = {"input_ids": ids.to(torch.int64).contiguous(), "logits": logits.contiguous(),
         "greedy.tokens": toks}
    for k, v in cap.items():
        g[k] = v.contiguous() if v.is_floating_point() else v.to(torch.int64).contiguous()
    for k, v in g.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32
    save_file(g, os.path.join(d, "golden.safetensors"), metadata={
        "transformers": transformers.__version__, "torch": torch.__version__, "seed": str(seed)})
    print("  golden keys:", ", ".join(f"{k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}"
                                      for k, v in sorted(g.items())))
    for f in ("config.json", "model.safetensors", "golden.safetensors"):
        print(f"  {name}/{f}: {os.path.getsize(os.path.join(d, f))} bytes")
    if not released:
        print("  HF state_dict names (first 60):")
        for k in list(sd)[:60]:
            print(f"    {k} {list(sd[k].shape)} {str(tensors[k].dtype).replace('torch.', '')}")
    else:
        print("  released names, layer 0 and globals:")
        for k in sorted(tensors):
            if k.startswith("layers.0.") or not k.startswith("layers."):
                if ".experts." in k and not k.startswith("layers.0.ffn.experts.0."):
                    continue
                print(f"    {k} {list(tensors[k].shape)} {str(tensors[k].dtype).replace('torch.', '')}")
    print(f"  RESULT {name}: {'PASS' if ok else 'CHECK FAILED'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder; writes OUT/tiny_a and OUT/tiny_b")
    ap.add_argument("--only", choices=["tiny_a", "tiny_b"], default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"threads {torch.get_num_threads()}")
    jobs = [("tiny_a", config_tiny_a, 1001, 72, [21, 10, 1, 1], False),
            ("tiny_b", config_tiny_b, 2002, 80, [13, 9], True)]
    ok = True
    for name, make_cfg, seed, seq_len, chunks, released in jobs:
        if args.only not in (None, name):
            continue
        try:
            ok &= generate(name, make_cfg(), seed, seq_len, chunks, args.out, released)
        except Exception:
            traceback.print_exc()
            ok = False
    print("\nALL OK" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
