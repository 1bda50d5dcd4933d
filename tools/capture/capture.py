#!/usr/bin/env python3
"""Capture the hidden states that phase 3 needs from a Hugging Face model, into one vindex-capture HDF5 file.

The file format (`vindex-capture`, format_version "1") is specified in docs/phase3.md. For every decoder
layer this records the input of the MLP / MoE block (after post_attention_layernorm: what the router and
the experts see), for MoE layers the engine's own router logits, selected experts and routing weights, and
the P most probable next tokens after every position.

    python3 tools/capture/capture.py --model DIR|FILE.gguf --out FILE.h5 [--prompts FILE]
        [--max-tokens-per-prompt N] [--top-p-count 16] [--device cpu|cuda] [--dtype float32|bfloat16]
        [--storage float32|float16] [--batch-size B] [--token-ids-from-text] [--model-name NAME]
        [--verify-experts]
    python3 tools/capture/capture.py --pooled --model DIR|FILE.gguf --out FILE.h5 [--prompts FILE]
        [--max-prompts N] [--storage float32|float16] ...   # per-prompt representations (pooled.py)

A GGUF checkpoint (llama.cpp's format; --model names the .gguf file) is loaded by transformers' own GGUF
support (from_pretrained(dir, gguf_file=...): config, tokenizer and weights dequantized to float32 by gguf-py;
needs the gguf package), for the architectures transformers reads from GGUF (llama, qwen2, qwen2moe, qwen3,
qwen3moe, ...). --storage float16 halves the file (the format reads float16 exactly; the values are rounded
once from the engine's float32).

Needs torch, transformers (written against 4.57.1), safetensors, h5py, numpy (and accelerate for
--device cuda with device_map="auto"). trust_remote_code is never enabled: only families that
transformers itself implements are captured (DeepSeek-V3 / Kimi-K2 as deepseek_v3, Qwen2-MoE, Qwen3-MoE,
OLMoE, Mixtral, GPT-OSS, Llama-4, and dense decoder-only models such as Llama).

Kimi-K2 (config.json model_type "kimi_k2", remote code on the hub) is architecturally DeepSeek-V3
(architectures ["DeepseekV3ForCausalLM"]): its config is built as transformers' DeepseekV3Config from the same
dict with the model_type replaced, and the model is transformers' DeepseekV3ForCausalLM (kimi_k2_as_deepseek_v3).
The capture's model_type attribute stays kimi_k2.

FP8 block-quantized checkpoints (quantization_config quant_method "fp8", fmt e4m3, weight_block_size, a
W_scale_inv per float8_e4m3fn weight W: DeepSeek-V3, Kimi-K2) with --device cpu: transformers' FP8 path needs a
GPU, so every such weight is dequantized here exactly as DeepSeek's weight_dequant does (float32(fp8) *
float32(scale of its block), one float32 rounding, partial edge blocks) into the model built without
quantization_config, which is then cast to --dtype. With --device cuda transformers' own FP8 path loads them.

What is captured, per family (transformers 4.57.1 source; see tools/capture/README.md):
  * deepseek_v3: `mlp.gate` is DeepseekV3TopkRouter; its forward returns (topk_indices, topk_weights) --
    the group-limited (n_group / topk_group), e_score_correction_bias-corrected sigmoid top-k and the
    normalised, routed_scaling_factor-scaled weights. Both are taken from that return value. The router does
    not return its logits; they are recomputed inside the hook with the router's own expression
    F.linear(x.float(), weight.float()) on the tensor it received.
  * qwen2_moe, qwen3_moe, olmoe, mixtral: `mlp.gate` / `block_sparse_moe.gate` is a plain nn.Linear whose
    output IS the engine's router_logits; the sparse-MoE block then does softmax(float32) -> topk ->
    (normalise) -> cast to the hidden dtype inside its forward without exposing the result. The hook applies
    exactly those torch operations to the gate's output tensor (bit-identical), and --verify-experts checks
    that every expert module then received exactly the token rows that selection implies.
  * gpt_oss: `mlp.router` (GptOssTopKRouter) returns (router_scores [T, E] with the softmax-over-top-k weights
    scattered in, router_indices [T, k]); selected = router_indices, weights = router_scores gathered there.
    Logits (bias included) are recomputed in the hook with the router's own F.linear(x, weight, bias).
  * llama4: `feed_forward.router` (Llama4Router) returns (router_scores [T, E] = sigmoid of the chosen logits,
    0 elsewhere; router_logits [T, E]); selected = torch.topk(router_logits, k, dim=1) exactly as the router
    does it, weights = router_scores gathered there.

Token ids: the model directory's tokenizer (AutoTokenizer, with its special tokens) when it has one.
`--token-ids-from-text` instead maps each prompt's UTF-8 bytes to ids (byte mod vocab_size) -- for the
tiny test fixtures, which have no tokenizer. Without a tokenizer and without that flag the capture fails.

The file is written to a temporary name beside --out and renamed when complete; on any error nothing is
left at --out and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from staged_h5 import StagedH5

FORMAT = "vindex-capture"
FORMAT_VERSION = "1"
MIN_TOP_P = 8
MLP_ATTRS = ("mlp", "block_sparse_moe", "feed_forward")
DEFAULT_PROMPTS = Path(__file__).resolve().parent / "prompts.txt"

# model_type (of the text model) -> routing family
FAMILIES = {
    "deepseek_v3": "deepseek_v3",
    "kimi_k2": "deepseek_v3",
    "qwen2_moe": "softmax_topk",
    "qwen3_moe": "softmax_topk",
    "olmoe": "softmax_topk",
    "mixtral": "softmax_topk",
    "gpt_oss": "gpt_oss",
    "llama4": "llama4",
    "llama4_text": "llama4",
}


class CaptureError(Exception):
    """A problem with the inputs or the model that the user can fix; printed without a traceback."""


# ---------------------------------------------------------------------------------------------
# Prompts and token ids
# ---------------------------------------------------------------------------------------------


def read_prompts(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CaptureError(f"cannot read prompts file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CaptureError(f"prompts file {path} is not UTF-8: {e}") from None
    prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise CaptureError(f"prompts file {path} has no non-blank line")
    return prompts


def token_ids_from_text(prompt: str, vocab_size: int) -> list[int]:
    """The documented fallback for models without a tokenizer: id = UTF-8 byte value mod vocab_size."""
    return [b % vocab_size for b in prompt.encode("utf-8")]


def tokenize(prompts: list[str], model_dir: Path, vocab_size: int, from_text: bool, max_tokens: int | None,
             gguf_file: str | None = None):
    """Returns (list of id lists, description of the tokenization). A GGUF file holds its tokenizer."""
    if from_text:
        ids = [token_ids_from_text(p, vocab_size) for p in prompts]
        how = "utf8-bytes-mod-vocab"
    else:
        has_tok = gguf_file is not None or any((model_dir / f).exists() for f in
                      ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "tiktoken.model"))
        if not has_tok:
            raise CaptureError(f"{model_dir} has no tokenizer (tokenizer.json / tokenizer_config.json / "
                               f"tokenizer.model); pass --token-ids-from-text to use UTF-8 bytes mod vocab_size")
        from transformers import AutoTokenizer
        try:
            tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False,
                                                **({"gguf_file": gguf_file} if gguf_file else {}))
        except Exception as e:  # noqa: BLE001 -- any loader failure is a user-facing error
            raise CaptureError(f"cannot load the tokenizer of {model_dir}: {e}") from None
        ids = [list(tok(p, add_special_tokens=True)["input_ids"]) for p in prompts]
        how = f"tokenizer {type(tok).__name__}"
    if max_tokens is not None:
        ids = [x[:max_tokens] for x in ids]
    for i, x in enumerate(ids):
        if not x:
            raise CaptureError(f"prompt {i} ({prompts[i][:40]!r}) gives no tokens")
        bad = [t for t in x if not 0 <= t < vocab_size]
        if bad:
            raise CaptureError(f"prompt {i}: token id {bad[0]} outside the vocabulary (size {vocab_size})")
    return ids, how


# ---------------------------------------------------------------------------------------------
# Model structure
# ---------------------------------------------------------------------------------------------


def text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def find_decoder_layers(model, n_layers: int):
    """The nn.ModuleList of decoder layers: the module named ...layers with num_hidden_layers entries whose
    entries have an MLP attribute (mlp / block_sparse_moe / feed_forward)."""
    import torch.nn as nn
    hits = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and name.split(".")[-1] == "layers" and len(mod) == n_layers:
            if all(any(hasattr(layer, a) for a in MLP_ATTRS) for layer in mod):
                if "vision" not in name:
                    hits.append((name, mod))
    if len(hits) != 1:
        raise CaptureError(f"cannot find the decoder layers (a ModuleList 'layers' of {n_layers} layers with an "
                           f"mlp / block_sparse_moe / feed_forward block): found {[h[0] for h in hits]}")
    return hits[0]


def mlp_of(layer):
    for a in MLP_ATTRS:
        if hasattr(layer, a):
            return a, getattr(layer, a)
    raise CaptureError(f"decoder layer {type(layer).__name__} has no {' / '.join(MLP_ATTRS)} module")


def num_routed_experts(tc) -> int:
    for a in ("n_routed_experts", "num_local_experts", "num_experts"):
        v = getattr(tc, a, None)
        if isinstance(v, int) and v > 0:
            return v
    raise CaptureError("config has no n_routed_experts / num_local_experts / num_experts")


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


@dataclass
class LayerRecord:
    """What the hooks saw during one forward pass (rows = batch * sequence, flattened in the model's order)."""
    mlp_input: list = field(default_factory=list)
    router_logits: list = field(default_factory=list)
    selected: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    expert_rows: dict = field(default_factory=dict)  # expert index -> list of input tensors (verify) or counts

    def clear(self):
        self.mlp_input.clear()
        self.router_logits.clear()
        self.selected.clear()
        self.weights.clear()
        self.expert_rows.clear()


def _first_tensor(args, kwargs, name="hidden_states"):
    if args:
        return args[0]
    if name in kwargs:
        return kwargs[name]
    raise CaptureError(f"hook: cannot find the {name} argument")


class Hooks:
    def __init__(self, model, layers, family: str | None, tc, verify_experts: bool):
        import torch
        import torch.nn.functional as F
        self.torch, self.F = torch, F
        self.records: list[LayerRecord] = []
        self.moe_layers: list[int] = []
        self.handles = []
        self.family = family
        self.tc = tc
        self.verify_experts = verify_experts
        self.hidden = tc.hidden_size
        self.n_experts = num_routed_experts(tc) if family else 0
        self.top_k = getattr(tc, "num_experts_per_tok", 0) if family else 0
        self.experts_checked = 0
        for idx, layer in enumerate(layers):
            rec = LayerRecord()
            self.records.append(rec)
            attr, mlp = mlp_of(layer)
            self.handles.append(mlp.register_forward_pre_hook(self._mlp_pre_hook(rec), with_kwargs=True))
            router = self._router_of(mlp)
            if router is not None:
                self.moe_layers.append(idx)
                self._install_router_hooks(idx, mlp, router, rec)

    # -- which module is the router ---------------------------------------------------------
    def _router_of(self, mlp):
        if self.family is None:
            return None
        name = {"deepseek_v3": "gate", "softmax_topk": "gate", "gpt_oss": "router", "llama4": "router"}[self.family]
        router = getattr(mlp, name, None)
        if router is None or not hasattr(mlp, "experts"):
            return None  # a dense layer of a MoE model
        return router

    # -- hooks -------------------------------------------------------------------------------
    def _mlp_pre_hook(self, rec: LayerRecord):
        def hook(module, args, kwargs):
            x = _first_tensor(args, kwargs)
            rec.mlp_input.append(x.detach().reshape(-1, x.shape[-1]).float().cpu())
        return hook

    def _install_router_hooks(self, idx: int, mlp, router, rec: LayerRecord):
        torch, F = self.torch, self.F
        fam = self.family
        k = self.top_k

        if fam == "deepseek_v3":
            if type(router).__name__ != "DeepseekV3TopkRouter":
                raise CaptureError(f"layer {idx}: expected DeepseekV3TopkRouter at mlp.gate, got {type(router).__name__}")

            def hook(module, args, kwargs, output):
                x = _first_tensor(args, kwargs).reshape(-1, module.config.hidden_size)
                logits = F.linear(x.type(torch.float32), module.weight.type(torch.float32))  # the router's own line
                topk_indices, topk_weights = output
                rec.router_logits.append(logits.detach().float().cpu())
                rec.selected.append(topk_indices.detach().cpu())
                rec.weights.append(topk_weights.detach().float().cpu())
        elif fam == "softmax_topk":
            block_norm = getattr(mlp, "norm_topk_prob", None)
            if type(mlp).__name__.startswith("Mixtral"):
                block_norm = True  # MixtralSparseMoeBlock always renormalises
            if block_norm is None:
                raise CaptureError(f"layer {idx}: {type(mlp).__name__} has no norm_topk_prob")
            if getattr(mlp, "top_k", k) != k:
                raise CaptureError(f"layer {idx}: block top_k {mlp.top_k} != config num_experts_per_tok {k}")

            def hook(module, args, kwargs, output):
                # exactly the sparse-MoE block's forward, applied to the gate's output tensor
                x = _first_tensor(args, kwargs)
                router_logits = output
                routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
                routing_weights, selected_experts = torch.topk(routing_weights, k, dim=-1)
                if block_norm:
                    routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
                routing_weights = routing_weights.to(x.dtype)
                rec.router_logits.append(router_logits.detach().float().cpu())
                rec.selected.append(selected_experts.detach().cpu())
                rec.weights.append(routing_weights.detach().float().cpu())
        elif fam == "gpt_oss":
            def hook(module, args, kwargs, output):
                x = _first_tensor(args, kwargs).reshape(-1, module.hidden_dim)
                logits = F.linear(x, module.weight, module.bias)  # the router's own line
                router_scores, router_indices = output
                rec.router_logits.append(logits.detach().float().cpu())
                rec.selected.append(router_indices.detach().cpu())
                rec.weights.append(router_scores.gather(1, router_indices).detach().float().cpu())
        elif fam == "llama4":
            def hook(module, args, kwargs, output):
                router_scores, router_logits = output
                _, router_indices = torch.topk(router_logits, module.top_k, dim=1)  # the router's own line
                rec.router_logits.append(router_logits.detach().float().cpu())
                rec.selected.append(router_indices.detach().cpu())
                rec.weights.append(router_scores.gather(1, router_indices).detach().float().cpu())
        else:  # pragma: no cover
            raise AssertionError(fam)
        self.handles.append(router.register_forward_hook(hook, with_kwargs=True))

        experts = getattr(mlp, "experts", None)
        if fam in ("deepseek_v3", "softmax_topk") and experts is not None and hasattr(experts, "__len__"):
            if len(experts) != self.n_experts:
                raise CaptureError(f"layer {idx}: {len(experts)} expert modules, config says {self.n_experts}")
            for e, expert in enumerate(experts):
                self.handles.append(expert.register_forward_pre_hook(self._expert_pre_hook(rec, e), with_kwargs=True))

    def _expert_pre_hook(self, rec: LayerRecord, e: int):
        def hook(module, args, kwargs):
            x = _first_tensor(args, kwargs, "x")
            rows = x.detach().reshape(-1, x.shape[-1])
            rec.expert_rows.setdefault(e, []).append(rows.float().cpu() if self.verify_experts else rows.shape[0])
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()

    def clear(self):
        for r in self.records:
            r.clear()

    # -- after one forward pass ----------------------------------------------------------------
    def check_experts(self, layer: int, rec: LayerRecord, x, selected):
        """The expert modules must have received exactly the token rows the captured selection implies:
        always the row counts, with --verify-experts the rows themselves (as multisets)."""
        if self.family not in ("deepseek_v3", "softmax_topk"):
            return
        sel = selected.numpy()
        for e in range(self.n_experts):
            tokens = np.nonzero((sel == e).any(axis=1))[0]
            got = rec.expert_rows.get(e, [])
            n_got = sum(g.shape[0] if not isinstance(g, int) else g for g in got)
            if n_got != len(tokens):
                raise CaptureError(f"layer {layer} expert {e}: the expert module received {n_got} tokens, the "
                                   f"captured selection implies {len(tokens)} (hooks out of step with the engine)")
            if self.verify_experts and len(tokens):
                a = np.concatenate([g.numpy() for g in got])
                b = x[tokens].numpy()
                a = a[np.lexsort(a.T[::-1])]
                b = b[np.lexsort(b.T[::-1])]
                if not np.array_equal(a, b):
                    raise CaptureError(f"layer {layer} expert {e}: the rows the expert received differ from the "
                                       f"mlp_input rows of the tokens the captured selection sends to it")
            self.experts_checked += 1


# ---------------------------------------------------------------------------------------------
# Capture
# ---------------------------------------------------------------------------------------------


def read_config_json(model_dir: Path) -> dict:
    try:
        with open(model_dir / "config.json", encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise CaptureError(f"cannot read {model_dir}/config.json: {e}") from None
    if not isinstance(raw, dict):
        raise CaptureError(f"{model_dir}/config.json is not a JSON object")
    return raw


def kimi_k2_as_deepseek_v3(raw: dict, model_dir: Path):
    """Kimi-K2 (config.json model_type "kimi_k2") is architecturally DeepSeek-V3: its config.json names
    architectures ["DeepseekV3ForCausalLM"], and the hub's remote code for it is DeepSeek-V3's modeling code
    with a DeepseekV3Config (MLA attention, shared + routed experts, sigmoid noaux_tc router with
    e_score_correction_bias, n_group / topk_group, first_k_dense_replace; Kimi-K2 only sets other sizes:
    384 experts, n_group 1, 64 heads, ...). transformers does not know model_type kimi_k2 and we never run
    remote code, so the config is built as transformers' own DeepseekV3Config from the same dict with the
    model_type replaced (auto_map, the pointer to the remote code, is dropped) and the model is loaded as
    transformers' DeepseekV3ForCausalLM. The capture keeps config.json's model_type, kimi_k2."""
    from transformers import DeepseekV3Config
    arch = raw.get("architectures") or []
    if "DeepseekV3ForCausalLM" not in arch:
        raise CaptureError(f"{model_dir}/config.json: model_type kimi_k2 with architectures {arch}; only "
                           f"DeepseekV3ForCausalLM checkpoints are loaded (as transformers' DeepSeek-V3)")
    d = {k: v for k, v in raw.items() if k not in ("model_type", "auto_map")}
    try:
        return DeepseekV3Config.from_dict(d)
    except Exception as e:  # noqa: BLE001
        raise CaptureError(f"{model_dir}/config.json (kimi_k2): not a valid DeepSeek-V3 config: {e}") from None


def _quant_method(config) -> str | None:
    qc = getattr(config, "quantization_config", None)
    m = qc.get("quant_method") if isinstance(qc, dict) else getattr(qc, "quant_method", None)
    return None if m is None else str(getattr(m, "value", m))


def fp8_block_size(config, model_dir: Path) -> tuple[int, int]:
    """(block rows, block cols) of a block-quantized FP8 checkpoint (quantization_config quant_method "fp8",
    fmt "e4m3", weight_block_size [128, 128] in DeepSeek-V3 / Kimi-K2); anything else is refused."""
    qc = getattr(config, "quantization_config", None)
    get = (qc.get if isinstance(qc, dict) else lambda k, d=None: getattr(qc, k, d))
    fmt = get("fmt", "e4m3")
    block = get("weight_block_size", None)
    act = get("activation_scheme", "dynamic")
    if fmt != "e4m3":
        raise CaptureError(f"{model_dir}: fp8 checkpoint with fmt {fmt!r}; only e4m3 (float8_e4m3fn) is dequantized "
                           f"on the CPU")
    if (not isinstance(block, (list, tuple)) or len(block) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
        raise CaptureError(f"{model_dir}: fp8 checkpoint with weight_block_size {block!r}; only block-quantized "
                           f"checkpoints (weight_block_size [rows, cols], weight_scale_inv per block) are "
                           f"dequantized on the CPU")
    if act != "dynamic":
        raise CaptureError(f"{model_dir}: fp8 checkpoint with activation_scheme {act!r}; only 'dynamic' (no stored "
                           f"activation scales) is dequantized on the CPU")
    return int(block[0]), int(block[1])


def dequantize_fp8_blocks(q, scale_inv, block: tuple[int, int], name: str = "tensor"):
    """DeepSeek's weight_dequant (DeepSeek-V3 inference/kernel.py, also fp8_cast_bf16.py): every element is
    float32(fp8 value) * float32(scale_inv of its block), one float32 rounding; block (i, j) covers rows
    i*br .. i*br+br-1 and columns j*bc .. j*bc+bc-1, the last block row / column partial when the shape is not a
    multiple (scale_inv is [ceil(rows / br), ceil(cols / bc)])."""
    import torch
    if q.dim() != 2:
        raise CaptureError(f"{name}: an FP8 tensor of shape {list(q.shape)}; block dequantization needs 2-D")
    rows, cols = q.shape
    br, bc = block
    want = (-(-rows // br), -(-cols // bc))
    if tuple(scale_inv.shape) != want:
        raise CaptureError(f"{name}: [{rows}, {cols}] in {br}x{bc} blocks needs a weight_scale_inv of shape "
                           f"{list(want)}, the checkpoint's is {list(scale_inv.shape)}")
    s = scale_inv.to(torch.float32).repeat_interleave(br, dim=0)[:rows].repeat_interleave(bc, dim=1)[:, :cols]
    return q.to(torch.float32) * s


def load_fp8_state_dict_dequantized(model_dir: Path, block: tuple[int, int], n_layers: int | None):
    """The checkpoint's tensors with every float8_e4m3fn weight W dequantized with its W_scale_inv (float32;
    the *_scale_inv tensors themselves are consumed); other tensors as stored. Tensors of decoder layers
    >= n_layers (DeepSeek-V3's multi-token-prediction layer, which transformers' DeepseekV3 does not implement
    and ignores on loading) are skipped. Returns (state dict, number of dequantized tensors, skipped names)."""
    import re
    import torch
    from safetensors import safe_open
    idx_path = model_dir / "model.safetensors.index.json"
    if idx_path.is_file():
        try:
            weight_map = json.loads(idx_path.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise CaptureError(f"cannot read {idx_path}: {e}") from None
        files = sorted(set(weight_map.values()))
    elif (model_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise CaptureError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")
    where = {}
    handles = {}
    try:
        for fname in files:
            path = model_dir / fname
            try:
                handles[fname] = safe_open(str(path), "pt")
            except Exception as e:  # noqa: BLE001
                raise CaptureError(f"cannot open {path}: {e}") from None
            for name in handles[fname].keys():
                if name in where:
                    raise CaptureError(f"{model_dir}: tensor {name} is in both {where[name]} and {fname}")
                where[name] = fname
        layer_re = re.compile(r"^model\.layers\.(\d+)\.")
        scale_suffix = "_scale_inv"
        state, used_scales, skipped, n_deq = {}, set(), [], 0
        for name in sorted(where):
            if name.endswith(scale_suffix):
                continue
            m = layer_re.match(name)
            if n_layers is not None and m and int(m.group(1)) >= n_layers:
                skipped.append(name)
                continue
            t = handles[where[name]].get_tensor(name)
            if t.dtype == torch.float8_e4m3fn:
                sname = name + scale_suffix
                if sname not in where:
                    raise CaptureError(f"{model_dir}: FP8 tensor {name} has no {sname}")
                t = dequantize_fp8_blocks(t, handles[where[sname]].get_tensor(sname), block, name)
                used_scales.add(sname)
                n_deq += 1
            elif t.dtype in (getattr(torch, "float8_e5m2", None), getattr(torch, "float8_e4m3fnuz", None),
                             getattr(torch, "float8_e5m2fnuz", None)):
                raise CaptureError(f"{model_dir}: {name} is {t.dtype}; only float8_e4m3fn is dequantized")
            state[name] = t
        for sname in sorted(where):
            if sname.endswith(scale_suffix) and sname not in used_scales:
                m = layer_re.match(sname)
                if n_layers is not None and m and int(m.group(1)) >= n_layers:
                    skipped.append(sname)
                    continue
                raise CaptureError(f"{model_dir}: {sname} belongs to no float8_e4m3fn tensor")
    finally:
        handles.clear()
    return state, n_deq, skipped


def load_model(model_dir: Path, device: str, dtype_name: str, gguf_file: str | None = None):
    """Returns (config, model, note): note says how the weights were loaded when it is not stock
    from_pretrained ("" otherwise). With gguf_file, transformers reads config and weights from that GGUF
    file in model_dir."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    if gguf_file is not None:
        return load_gguf_model(model_dir, gguf_file, device, dtype_name)
    raw = read_config_json(model_dir)
    loaded_as = ""
    if raw.get("model_type") == "kimi_k2":
        config = kimi_k2_as_deepseek_v3(raw, model_dir)
        loaded_as = "kimi_k2 loaded as transformers' deepseek_v3"
    else:
        try:
            config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise CaptureError(f"cannot read {model_dir}/config.json: {e}") from None
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    qmethod = _quant_method(config)
    if device == "cpu" and qmethod == "fp8":
        model, note = load_fp8_dequantized(config, model_dir, dtype)
        return config, model, "; ".join(x for x in (loaded_as, note) if x)
    kwargs = dict(trust_remote_code=False, dtype=dtype, low_cpu_mem_usage=True)
    if loaded_as:
        kwargs["config"] = config  # AutoConfig cannot read it (see kimi_k2_as_deepseek_v3)
    if device == "cuda":
        if not torch.cuda.is_available():
            raise CaptureError("--device cuda: torch sees no CUDA device")
        kwargs["device_map"] = "auto"
    if str(qmethod).lower().endswith("mxfp4"):
        # With the triton MXFP4 kernels (GPU), transformers replaces GptOssMLP.forward by one that never calls
        # the router module (integrations/mxfp4.py: mlp_forward), so its choice could not be captured.
        # Dequantized to the compute dtype, the plain GptOssMLP / GptOssTopKRouter path runs.
        kwargs["quantization_config"] = transformers.Mxfp4Config(dequantize=True)
    if config.model_type == "llama4":
        cls = transformers.Llama4ForConditionalGeneration  # the published Llama-4 checkpoints are multimodal
    else:
        cls = AutoModelForCausalLM
    try:
        model = cls.from_pretrained(str(model_dir), **kwargs)
    except Exception as e:  # noqa: BLE001
        raise CaptureError(f"cannot load {model_dir} with transformers {transformers.__version__} "
                           f"({cls.__name__ if isinstance(cls, type) else cls}): {e}") from None
    model.eval()
    if device == "cpu":
        # to(dtype) too: a CPU-dequantized MXFP4 checkpoint (gpt-oss) keeps its experts in bfloat16
        model.to(device="cpu", dtype=dtype)
    return config, model, loaded_as


def load_gguf_model(model_dir: Path, gguf_file: str, device: str, dtype_name: str):
    """A GGUF checkpoint through transformers' own GGUF loader (integrations/ggml.py: metadata to config,
    tensors dequantized by gguf-py, llama.cpp's q/k row interleaving undone)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    where = model_dir / gguf_file
    try:
        config = AutoConfig.from_pretrained(str(model_dir), gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), gguf_file=gguf_file,
                                                     dtype={"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name],
                                                     **({"device_map": "auto"} if device == "cuda" else {}))
    except Exception as e:  # noqa: BLE001
        raise CaptureError(f"cannot load {where} with transformers {transformers.__version__}'s GGUF loader "
                           f"(needs the gguf package): {e}") from None
    model.eval()
    return config, model, f"GGUF {gguf_file} loaded by transformers (dequantized by gguf-py)"


def load_fp8_dequantized(config, model_dir: Path, dtype):
    """A block-quantized FP8 checkpoint (DeepSeek-V3, Kimi-K2) on the CPU. transformers' own FP8 path
    (FineGrainedFP8, quantization_config quant_method "fp8") needs a GPU, so the weights are dequantized here
    exactly as DeepSeek's weight_dequant does (dequantize_fp8_blocks), loaded in float32 into the model built
    from the same config without its quantization_config (plain nn.Linear layers), and the model is then cast
    to the compute dtype. Activations are not quantized (the FP8 kernels quantize them per 1 x 128 block);
    the capture is of the dequantized model. Needs 4 bytes per parameter twice over while loading."""
    import torch
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
    block = fp8_block_size(config, model_dir)
    config = copy_config_without_quantization(config)
    n_layers = getattr(text_config(config), "num_hidden_layers", None)
    state, n_deq, skipped = load_fp8_state_dict_dequantized(model_dir, block, n_layers)
    if n_deq == 0:
        raise CaptureError(f"{model_dir}: quantization_config says fp8 but no tensor is float8_e4m3fn")
    if config.model_type == "llama4":
        cls = transformers.Llama4ForConditionalGeneration
    else:
        try:
            cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
        except KeyError:
            raise CaptureError(f"{model_dir}: transformers has no causal-LM class for "
                               f"{type(config).__name__}") from None
    try:
        model, info = cls.from_pretrained(None, config=config, state_dict=state, dtype=torch.float32,
                                          output_loading_info=True)
    except Exception as e:  # noqa: BLE001
        raise CaptureError(f"cannot load the dequantized weights of {model_dir} into {cls.__name__} "
                           f"(transformers {transformers.__version__}): {e}") from None
    del state
    for what in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        bad = list(info.get(what) or [])
        if bad:
            raise CaptureError(f"{model_dir}: loading the dequantized weights into {cls.__name__}: "
                               f"{what.replace('_', ' ')} {bad[:5]}{' ...' if len(bad) > 5 else ''} ({len(bad)} in all)")
    model.eval()
    model.to(device="cpu", dtype=dtype)
    note = (f"fp8 e4m3 {block[0]}x{block[1]} blocks: {n_deq} tensors dequantized to float32 on the CPU"
            + (f" (skipped {len(skipped)} tensors of layers >= num_hidden_layers)" if skipped else ""))
    return model, note


def copy_config_without_quantization(config):
    """A deep copy of config without quantization_config, so from_pretrained builds plain float layers."""
    import copy
    c = copy.deepcopy(config)
    for obj in {id(c): c, id(text_config(c)): text_config(c)}.values():
        if hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    return c


def fix_deepseek_router_bias(layers, moe_layers, model_dir: Path) -> int:
    """Give every DeepseekV3TopkRouter the checkpoint's e_score_correction_bias in the checkpoint's dtype
    (float32 in the published DeepSeek-V3 / Kimi-K2 and in our fixture). transformers zero-initialises the
    buffer (a missing key would route without it) and from_pretrained(dtype=bfloat16) rounds it to bfloat16,
    which changes choices (on the tiny fixture 24 of 2626 in a bf16 run); the official DeepSeek inference
    code and vLLM keep it float32. The router adds it to its float32 sigmoid scores either way.
    Returns how many layers needed the float32 restored."""
    import torch
    from safetensors import safe_open
    idx_path = model_dir / "model.safetensors.index.json"
    weight_map = json.loads(idx_path.read_text())["weight_map"] if idx_path.exists() else None
    restored = 0
    for i in moe_layers:
        gate = mlp_of(layers[i])[1].gate
        name = f"model.layers.{i}.mlp.gate.e_score_correction_bias"
        fname = model_dir / (weight_map.get(name, "") if weight_map else "model.safetensors")
        if not fname.is_file():
            raise CaptureError(f"{model_dir}: no file holds {name}; DeepSeek-V3 routing needs e_score_correction_bias")
        with safe_open(str(fname), "pt") as f:
            if name not in f.keys():
                raise CaptureError(f"{fname} has no {name}; DeepSeek-V3 routing needs e_score_correction_bias")
            want = f.get_tensor(name)
        got = gate.e_score_correction_bias
        if not torch.equal(want.to(got.dtype), got.detach().cpu()):
            raise CaptureError(f"layer {i}: the loaded e_score_correction_bias differs from {name} in {fname}")
        if got.dtype != want.dtype:
            gate.e_score_correction_bias = want.to(got.device)  # assigning a tensor to a buffer name replaces it
            restored += 1
    return restored


class CaptureWriter(StagedH5):
    """Creates the whole file layout in PATH's directory under a temporary name, takes the token rows batch by
    batch (so a large capture never sits in memory), then closes and renames it to PATH (staged_h5.py)."""

    def __init__(self, path: Path, attrs: dict, token_ids, prompt_index, position, moe_layers, n_experts, top_k,
                 top_p, storage=np.float32):
        super().__init__(path, CaptureError)
        f = self.f
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        for key in ("model", "model_type", "engine"):
            f.attrs[key] = str(attrs[key])
        for key in ("num_hidden_layers", "hidden_size", "n_tokens", "n_prompts"):
            f.attrs[key] = np.int64(attrs[key])
        for key in ("capture_dtype", "tokenization"):  # informative extras, not in the format table
            f.attrs[key] = str(attrs[key])
        if storage != np.float32:  # (float32 files keep the bytes they had before this attribute existed)
            f.attrs["storage_dtype"] = np.dtype(storage).name
        n, h = int(attrs["n_tokens"]), int(attrs["hidden_size"])

        def ds(group, name, shape=None, dtype=None, data=None):
            return group.create_dataset(name, shape=shape, dtype=dtype, data=data, track_times=False)

        t = f.create_group("tokens")
        ds(t, "token_ids", data=np.asarray(token_ids, np.int64))
        ds(t, "prompt_index", data=np.asarray(prompt_index, np.int32))
        ds(t, "position", data=np.asarray(position, np.int32))
        lg = f.create_group("layers")
        self.layers = []
        for i in range(int(attrs["num_hidden_layers"])):
            g = lg.create_group(f"layer_{i:03d}")
            d = {"mlp_input": ds(g, "mlp_input", (n, h), storage)}
            if i in moe_layers:
                d["router_logits"] = ds(g, "router_logits", (n, n_experts), np.float32)
                d["selected_experts"] = ds(g, "selected_experts", (n, top_k), np.int32)
                d["routing_weights"] = ds(g, "routing_weights", (n, top_k), np.float32)
            self.layers.append(d)
        o = f.create_group("output")
        self.top_ids = ds(o, "top_token_ids", (n, top_p), np.int64)
        self.top_probs = ds(o, "top_probs", (n, top_p), np.float32)

    def write_rows(self, lo: int, hi: int, layer_data: list[dict], top_ids, top_probs):
        for d, arrays in zip(self.layers, layer_data):
            for name, a in arrays.items():
                d[name][lo:hi] = a
        self.top_ids[lo:hi] = top_ids
        self.top_probs[lo:hi] = top_probs


def run_capture(args) -> dict:
    import torch
    import transformers

    model_dir, gguf_file = Path(args.model), None
    if model_dir.suffix == ".gguf" and model_dir.is_file():
        model_dir, gguf_file = model_dir.parent, model_dir.name
    elif not (model_dir / "config.json").is_file():
        raise CaptureError(f"{model_dir} is neither a model directory (no config.json) nor a .gguf file")
    prompts = read_prompts(Path(args.prompts))
    if args.max_tokens_per_prompt is not None and args.max_tokens_per_prompt < 1:
        raise CaptureError("--max-tokens-per-prompt must be >= 1")
    if args.batch_size < 1:
        raise CaptureError("--batch-size must be >= 1")
    out_dir = Path(args.out).resolve().parent
    if not out_dir.is_dir():
        raise CaptureError(f"output directory {out_dir} does not exist")

    torch.manual_seed(0)
    if args.device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    config, model, load_note = load_model(model_dir, args.device, args.dtype, gguf_file)
    tc = text_config(config)
    n_layers = int(tc.num_hidden_layers)
    hidden = int(tc.hidden_size)
    vocab = int(tc.vocab_size)
    model_type = config.model_type if gguf_file else read_config_json(model_dir).get("model_type") or config.model_type  # kimi_k2 stays kimi_k2
    family = FAMILIES.get(tc.model_type) or FAMILIES.get(model_type)
    top_p = min(args.top_p_count, vocab)
    if top_p < MIN_TOP_P:
        raise CaptureError(f"--top-p-count {args.top_p_count} (vocabulary {vocab}): the format needs P >= {MIN_TOP_P}")

    ids, tokenization = tokenize(prompts, model_dir, vocab, args.token_ids_from_text, args.max_tokens_per_prompt,
                                 gguf_file)
    lengths = [len(x) for x in ids]
    n_tokens = sum(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    layers_name, layers = find_decoder_layers(model, n_layers)
    hooks = Hooks(model, layers, family, tc, args.verify_experts)
    bias_restored = 0
    if family == "deepseek_v3" and hooks.moe_layers:
        bias_restored = fix_deepseek_router_bias(layers, hooks.moe_layers, model_dir)
    n_experts, top_k = hooks.n_experts, hooks.top_k

    attrs = dict(model=args.model_name or (Path(gguf_file).stem if gguf_file else model_dir.resolve().name),
                 model_type=model_type, engine=f"transformers {transformers.__version__}", num_hidden_layers=n_layers,
                 hidden_size=hidden, n_tokens=n_tokens, n_prompts=len(prompts),
                 capture_dtype=args.dtype, tokenization=tokenization, storage_dtype=args.storage)
    writer = CaptureWriter(Path(args.out), attrs,
                           token_ids=np.concatenate([np.asarray(x, np.int64) for x in ids]),
                           prompt_index=np.repeat(np.arange(len(ids), dtype=np.int32), lengths),
                           position=np.concatenate([np.arange(n, dtype=np.int32) for n in lengths]),
                           moe_layers=hooks.moe_layers, n_experts=n_experts, top_k=top_k, top_p=top_p,
                           storage={"float32": np.float32, "float16": np.float16}[args.storage])
    try:
        in_device = model.get_input_embeddings().weight.device
        pad_id = 0
        with torch.inference_mode():
            for start in range(0, len(ids), args.batch_size):
                batch = list(range(start, min(start + args.batch_size, len(ids))))
                t_max = max(lengths[p] for p in batch)
                inp = torch.full((len(batch), t_max), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), t_max), dtype=torch.long)
                for r, p in enumerate(batch):  # right padding: real tokens keep positions 0..n-1
                    inp[r, :lengths[p]] = torch.tensor(ids[p], dtype=torch.long)
                    mask[r, :lengths[p]] = 1
                hooks.clear()
                out = model(input_ids=inp.to(in_device), attention_mask=mask.to(in_device), use_cache=False)
                valid = mask.reshape(-1).bool().numpy()
                lo, hi = int(offsets[batch[0]]), int(offsets[batch[-1] + 1])
                layer_data = []
                for i, rec in enumerate(hooks.records):
                    if len(rec.mlp_input) != 1:
                        raise CaptureError(f"layer {i}: the MLP block ran {len(rec.mlp_input)} times in one "
                                           f"forward pass")
                    x = rec.mlp_input[0]
                    if tuple(x.shape) != (len(batch) * t_max, hidden):
                        raise CaptureError(f"layer {i}: MLP input has shape {tuple(x.shape)}, expected "
                                           f"{(len(batch) * t_max, hidden)}")
                    d = {"mlp_input": x.numpy()[valid]}
                    if args.storage == "float16" and not np.all(np.abs(d["mlp_input"]) <= np.finfo(np.float16).max):
                        raise CaptureError(f"layer {i}: an MLP input is beyond float16's range; use --storage float32")
                    if i in hooks.moe_layers:
                        if len(rec.router_logits) != 1:
                            raise CaptureError(f"layer {i}: the router hook ran {len(rec.router_logits)} times in "
                                               f"one forward pass (a hub kernel replacing the MoE forward skips it)")
                        lg, sel, w = rec.router_logits[0], rec.selected[0], rec.weights[0]
                        if tuple(lg.shape) != (x.shape[0], n_experts) or tuple(sel.shape) != (x.shape[0], top_k):
                            raise CaptureError(f"layer {i}: router output shapes {tuple(lg.shape)} / "
                                               f"{tuple(sel.shape)}, expected {(x.shape[0], n_experts)} / "
                                               f"{(x.shape[0], top_k)}")
                        hooks.check_experts(i, rec, x, sel)
                        d["router_logits"] = lg.numpy()[valid]
                        d["selected_experts"] = sel.numpy().astype(np.int32)[valid]
                        d["routing_weights"] = w.numpy()[valid]
                    for name, a in d.items():
                        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                            raise CaptureError(f"layer {i}: the model produced non-finite values in {name} "
                                               f"(prompts {batch[0]}..{batch[-1]})")
                    layer_data.append(d)
                logits = out.logits.float().reshape(-1, out.logits.shape[-1])
                probs = torch.softmax(logits, dim=-1)
                pv, pi = torch.topk(probs, top_p, dim=-1, sorted=True)
                pv, pi = pv.cpu().numpy()[valid], pi.cpu().numpy()[valid]
                if not np.all(np.isfinite(pv)):
                    raise CaptureError(f"non-finite next-token probabilities (prompts {batch[0]}..{batch[-1]})")
                writer.write_rows(lo, hi, layer_data, pi, pv)
                del out, logits, probs
                hooks.clear()
        hooks.remove()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return dict(attrs=attrs, moe_layers=hooks.moe_layers, experts_checked=hooks.experts_checked, top_p=top_p,
                decoder_layers=layers_name, bias_restored=bias_restored, load_note=load_note)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True,
                    help="Hugging Face model directory (config.json + safetensors), or a GGUF file")
    ap.add_argument("--out", required=True, help="the HDF5 capture file to write")
    ap.add_argument("--prompts", default=str(DEFAULT_PROMPTS),
                    help="UTF-8 text file, one prompt per line, blank lines skipped (default: %(default)s)")
    ap.add_argument("--max-tokens-per-prompt", type=int, default=None, help="truncate each prompt's token ids")
    ap.add_argument("--top-p-count", type=int, default=16,
                    help="next-token probabilities kept per token (>= 8; capped at the vocabulary size)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu, or cuda with device_map='auto' over every visible GPU")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                    help="compute dtype (default: float32 on cpu, bfloat16 on cuda)")
    ap.add_argument("--storage", choices=("float32", "float16"), default="float32",
                    help="type of the stored mlp_input datasets (float16 halves the file; read exactly by vindex_mpi)")
    ap.add_argument("--batch-size", type=int, default=1, help="prompts per forward pass (right-padded)")
    ap.add_argument("--token-ids-from-text", action="store_true",
                    help="no tokenizer: token id = UTF-8 byte value mod vocab_size (test fixtures)")
    ap.add_argument("--model-name", default=None, help="the file's 'model' attribute (default: directory name)")
    ap.add_argument("--pooled", action="store_true",
                    help="write a vindex-pooled-capture instead: per prompt and hidden state the mean over the "
                         "prompt's tokens and its last token (for `vindex_mpi cka`; encoders such as BERT too)")
    ap.add_argument("--max-prompts", type=int, default=None, help="--pooled: the first N prompts only")
    ap.add_argument("--verify-experts", action="store_true",
                    help="also check that each expert module received exactly the rows of the tokens the captured "
                         "selection sends to it (keeps a copy of every expert input: small models only)")
    args = ap.parse_args(argv)
    if args.dtype is None:
        args.dtype = "float32" if args.device == "cpu" else "bfloat16"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import transformers
        transformers.logging.set_verbosity_error()
        if args.pooled:
            import pooled
            cap = pooled.run_pooled(args, sys.modules[__name__])
            a = cap["attrs"]
            print(f"{args.out}: {a['model']} ({a['model_type']}), {a['n_prompts']} prompts, {a['n_representations']} "
                  f"representations of {a['hidden_size']} values, mean and last token; {a['engine']}, "
                  f"{a['capture_dtype']}" + (f"; {cap['note']}" if cap["note"] else ""))
            return 0
        cap = run_capture(args)
    except CaptureError as e:
        print(f"capture.py: error: {e}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 -- unexpected: show where
        traceback.print_exc()
        print("capture.py: error: unexpected failure (traceback above); nothing was written", file=sys.stderr)
        return 1
    a = cap["attrs"]
    print(f"{args.out}: {a['model_type']}, {a['n_prompts']} prompts, {a['n_tokens']} tokens, "
          f"{a['num_hidden_layers']} layers (MoE: {cap['moe_layers']}), hidden {a['hidden_size']}, "
          f"{cap['top_p']} next-token probabilities; {a['engine']}, {a['capture_dtype']}"
          + (f"; expert inputs checked for {cap['experts_checked']} (layer, expert, batch)" if cap["experts_checked"]
             else "")
          + (f"; e_score_correction_bias kept in the checkpoint's float32 in {cap['bias_restored']} layers"
             if cap["bias_restored"] else "")
          + (f"; {cap['load_note']}" if cap["load_note"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
