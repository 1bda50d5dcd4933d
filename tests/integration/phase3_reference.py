#!/usr/bin/env python3
"""Float64 reference for phase 3 (docs/phase3.md): routing and activation statistics from a capture file.

numpy + h5py only (runs under /usr/bin/python3; no torch, no safetensors package; BF16, F16 and FP8 F8_E4M3
tensors are decoded here, FP8 with its <name>_scale_inv block scales as DeepSeek's weight_dequant does, so
block-quantized checkpoints such as tests/fixtures/kimi_k2_tiny are read too). From a vindex-capture
HDF5 file and the checkpoint directory it was captured from, it recomputes in float64 everything
docs/phase3.md defines: each family's routing (DeepSeek-V3 / Kimi-K2 noaux_tc, Qwen2-MoE, Qwen3-MoE, OLMoE,
Mixtral, GPT-OSS, Llama-4), the agreement with the capture's selected_experts, the per-MoE-layer load
statistics, C1, C2, C3 and C5.

    from phase3_reference import reference_stats, validate_capture, make_bad_captures
    ref = reference_stats("tests/fixtures/capture/deepseek_v3.h5", "tests/fixtures/hf/deepseek_v3")
    ref["layers"][1]["agreement"], ref["C1"]["median"], ref["C5"]["count"]

    python3 tests/integration/phase3_reference.py CAPTURE MODEL_DIR [--sample-tokens 512] [--json OUT]
    python3 tests/integration/phase3_reference.py --make-bad GOOD_CAPTURE OUT_DIR     # the error-test files
    python3 tests/integration/phase3_reference.py --make-wide GOOD_CAPTURE OUT        # float64 / uint64 copy

Layout of the dict reference_stats() returns (numpy arrays are float64 unless said otherwise):

    capture, model_dir          str: the paths given
    model_type                  config.json's model_type (of text_config for multimodal Llama-4)
    family                      "deepseek_v3" | "softmax_topk" | "gpt_oss" | "llama4" | "dense"
    num_hidden_layers, hidden_size, n_tokens, n_prompts
    num_experts, top_k          routed experts E and experts per token k (0 for a dense model)
    moe_layers, dense_layers    lists of layer indices (MoE = the checkpoint has the layer's router)
    sample_tokens               S as asked; sampled_token_indices: int64 array of the tokens C1/C3/C5 use
    layers                      list of L dicts, one per layer:
        layer                   index
        moe                     bool
      MoE layers only (from the RECOMPUTED routing; the capture's selection enters only `agreement`):
        router_logits           [N, E] x W_r^T (+ b_r, GPT-OSS)
        selected_experts        int64 [N, k], the recomputed choice, best first (ties: lower index first)
        routing_weights         [N, k] the recomputed weights, aligned with selected_experts
        agreement               share of the capture's (token, expert) choices the recomputation also makes,
                                None when the capture has no selected_experts
        agreement_matches, agreement_total   int numerator and denominator of agreement
        agreement_up_to_ties    like agreement, but an engine choice whose recomputed score exactly equals the
                                k-th recomputed choice's also counts (not in docs/phase3.md; see
                                agreement_up_to_ties())
        routing_weights_max_abs_diff   max |capture weight - recomputed weight| over the matching
                                (token, expert) pairs; None without routing_weights in the capture
        router_logits_max_abs_diff     max |capture logits - recomputed logits|; None without router_logits
        load_counts             int64 [E] c_e
        load_entropy, load_cv, max_over_mean_load   float
        never_chosen            int
        topk_weight_concentration   float (mean over tokens of max weight / sum of the token's k weights)
        coactivation            int64 [E, E], diagonal = load_counts
      Every layer:
        c1_sparsity             float, the layer's mean sparsity over its (token, expert) SwiGLU vectors, or
                                None when the family is left out of C1 (GPT-OSS, non-SwiGLU)
        c3_gate_coherence       float, the layer's mean |cos(g, u)|, or None (same families)
        c1_vectors              int, how many (token, expert) vectors the layer's C1 / C3 values average
    C1                          {"per_layer": [L floats or None], "median": float or None, "pending": bool}
    C2                          float: mean over N of the sum of top_probs[:, :8]
    C3                          {"per_layer": [...], "median": float or None, "pending": bool}
    C5                          {"cka": [L, L] array, "count": int, "stages": [{"start_layer", "end_layer"
                                (inclusive), "start_fraction" = start_layer / L, "end_fraction" =
                                (end_layer + 1) / L}]}
    agreement_min               the smallest per-layer agreement (None when no layer has one)

Choices where docs/phase3.md leaves room (kept in one place here, see the notes in the report):
  * the load statistics, topk_weight_concentration and the C1 / C3 (token, expert) pairs use the
    recomputed selection and weights, not the capture's;
  * shared experts are not part of C1 / C3 (only "each expert it chose");
  * DeepSeek's restriction to the topk_group best groups masks the other experts out completely (they
    can never be chosen), as docs/phase3.md says; transformers 4.57.1 sets their score to 0.0 instead,
    which differs only when some kept expert has c = s + bias < 0;
  * CKA of a layer whose centred sampled activations are all zero (e.g. S = 1): 1 with itself, 0 with any
    other layer;
  * median over an even number of layers: numpy's (mean of the two middle values).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import h5py
import numpy as np

FORMAT = "vindex-capture"
FORMAT_VERSION = "1"
MIN_TOP_P = 8
CKA_STAGE_THRESHOLD = 0.9
SPARSITY_RELATIVE = 0.01
DEFAULT_SAMPLE_TOKENS = 512

FAMILY_OF = {
    "deepseek_v3": "deepseek_v3", "kimi_k2": "deepseek_v3",
    "qwen2_moe": "softmax_topk", "qwen3_moe": "softmax_topk", "olmoe": "softmax_topk", "mixtral": "softmax_topk",
    "gpt_oss": "gpt_oss",
    "llama4": "llama4", "llama4_text": "llama4",
    "llama": "dense", "mistral": "dense", "qwen2": "dense", "qwen3": "dense",
}
NOT_SWIGLU = ("gpt_oss",)  # left out of C1 / C3 (GPT-OSS: clamped variant with biases)


class CaptureFormatError(ValueError):
    """The capture file does not follow docs/phase3.md (or does not fit the checkpoint)."""


# ---------------------------------------------------------------------------------------------
# safetensors, read with numpy
# ---------------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16,
              "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
              "F8_E4M3": np.uint8}
SCALE_SUFFIX = "_scale_inv"
DEFAULT_FP8_BLOCK = (128, 128)


def _e4m3fn_table() -> np.ndarray:
    """float32 value of each of the 256 float8_e4m3fn codes, by formula: sign bit 7, exponent bits 6..3 (bias 7),
    mantissa bits 2..0. Exponent 0: subnormal m/8 * 2^-6; else (1 + m/8) * 2^(e - 7) (largest finite 448);
    0x7F and 0xFF are NaN (e4m3fn has no infinities), with the bits a float conversion gives them: sign kept, the
    3 mantissa bits at the top of the float32 mantissa (0x7FF00000 / 0xFFF00000, as torch's float8_e4m3fn ->
    float32). Every value is exact in float32."""
    bits = np.zeros(256, dtype=np.uint32)
    for code in range(256):
        sign, exp, man = code >> 7, (code >> 3) & 0xF, code & 0x7
        if exp == 0xF and man == 0x7:
            bits[code] = (sign << 31) | 0x7F800000 | (man << 20)
            continue
        v = (man / 8.0) * 2.0 ** -6 if exp == 0 else (1.0 + man / 8.0) * 2.0 ** (exp - 7)
        bits[code] = np.array(-v if sign else v, dtype=np.float32).view(np.uint32)
    return bits.view(np.float32)


E4M3FN = _e4m3fn_table()


def dequantize_fp8_blocks(codes: np.ndarray, scale_inv: np.ndarray, block=DEFAULT_FP8_BLOCK, name: str = "tensor"):
    """DeepSeek's weight_dequant: float32(e4m3fn value) * float32(scale_inv of its block), one float32 rounding.
    codes uint8 [R, C]; scale_inv [ceil(R / br), ceil(C / bc)]; the last block row / column may be partial."""
    if codes.ndim != 2:
        raise ValueError(f"{name}: an F8_E4M3 tensor of shape {list(codes.shape)}; block scales need 2-D")
    rows, cols = codes.shape
    br, bc = block
    want = (-(-rows // br), -(-cols // bc))
    if tuple(scale_inv.shape) != want:
        raise ValueError(f"{name}: [{rows}, {cols}] in {br}x{bc} blocks needs {name}{SCALE_SUFFIX} of shape "
                         f"{list(want)}, not {list(scale_inv.shape)}")
    s = np.repeat(np.repeat(scale_inv.astype(np.float32), br, axis=0)[:rows], bc, axis=1)[:, :cols]
    return E4M3FN[codes] * s  # float32 * float32


class SafetensorsDir:
    """The tensors of a checkpoint directory: model.safetensors, or the shards named by
    model.safetensors.index.json. get(name) returns float32 (BF16 widened by a 16-bit shift, F16 by numpy;
    F8_E4M3 decoded and multiplied by the 128x128 -- config.json's quantization_config weight_block_size --
    block scales of <name>_scale_inv, as DeepSeek's weight_dequant does)."""

    def __init__(self, model_dir):
        self.dir = Path(model_dir)
        index = self.dir / "model.safetensors.index.json"
        if index.exists():
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
            files = sorted(set(weight_map.values()))
        elif (self.dir / "model.safetensors").exists():
            files = ["model.safetensors"]
        else:
            raise FileNotFoundError(f"{self.dir}: no model.safetensors or model.safetensors.index.json")
        self.fp8_block = DEFAULT_FP8_BLOCK
        config = self.dir / "config.json"
        if config.exists():
            with open(config, encoding="utf-8") as f:
                cfg = json.load(f)
            qc = cfg.get("quantization_config") or (cfg.get("text_config") or {}).get("quantization_config") or {}
            block = qc.get("weight_block_size") if isinstance(qc, dict) else None
            if block is not None:
                if not (isinstance(block, list) and len(block) == 2
                        and all(isinstance(b, int) and b > 0 for b in block)):
                    raise ValueError(f"{config}: quantization_config.weight_block_size {block!r} is not [rows, cols]")
                self.fp8_block = (block[0], block[1])
        self.entries: dict[str, tuple[Path, dict, int]] = {}
        for name in files:
            path = self.dir / name
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            header.pop("__metadata__", None)
            for key, info in header.items():
                self.entries[key] = (path, info, 8 + n)

    def has(self, name: str) -> bool:
        return name in self.entries

    def names(self):
        return self.entries.keys()

    def _raw(self, name: str) -> tuple[str, np.ndarray]:
        if name not in self.entries:
            raise KeyError(f"{self.dir}: no tensor {name}")
        path, info, base = self.entries[name]
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise ValueError(f"{path}: {name} has dtype {dt}, which this reader does not decode")
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        with open(path, "rb") as f:
            f.seek(base + start)
            raw = f.read(end - start)
        return dt, np.frombuffer(raw, dtype=np.dtype(_ST_DTYPES[dt]).newbyteorder("<")).reshape(shape)

    def get(self, name: str) -> np.ndarray:
        dt, a = self._raw(name)
        if dt == "F8_E4M3":
            if not self.has(name + SCALE_SUFFIX):
                raise ValueError(f"{self.dir}: F8_E4M3 tensor {name} has no {name}{SCALE_SUFFIX}")
            return dequantize_fp8_blocks(a, self.get(name + SCALE_SUFFIX), self.fp8_block, name)
        if dt == "BF16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        if dt in ("F16", "F32", "F64"):
            return a.astype(np.float32) if dt != "F64" else a
        return a


# ---------------------------------------------------------------------------------------------
# The model: family, layers, tensor names
# ---------------------------------------------------------------------------------------------


class Model:
    def __init__(self, model_dir):
        self.dir = Path(model_dir)
        with open(self.dir / "config.json", encoding="utf-8") as f:
            self.config = json.load(f)
        self.text = self.config.get("text_config") or self.config
        self.model_type = self.text.get("model_type", self.config.get("model_type"))
        if self.config.get("model_type") == "llama4":
            self.model_type = "llama4"
        if self.model_type not in FAMILY_OF:
            raise ValueError(f"{self.dir}: model_type {self.model_type!r} is not handled by this reference")
        self.family = FAMILY_OF[self.model_type]
        self.st = SafetensorsDir(self.dir)
        self.n_layers = int(self.text["num_hidden_layers"])
        self.hidden = int(self.text["hidden_size"])
        self.prefix = "language_model.model.layers" if self.family == "llama4" else "model.layers"
        self.mlp = "feed_forward" if self.family == "llama4" else (
            "block_sparse_moe" if self.model_type == "mixtral" else "mlp")
        if self.family == "deepseek_v3":
            if self.text.get("topk_method", "noaux_tc") != "noaux_tc" or self.text.get("scoring_func",
                                                                                        "sigmoid") != "sigmoid":
                raise ValueError(f"{self.dir}: DeepSeek routing with topk_method={self.text.get('topk_method')!r}, "
                                 f"scoring_func={self.text.get('scoring_func')!r} is not what docs/phase3.md defines")
        self.moe_layers = [l for l in range(self.n_layers) if self.st.has(self.router_name(l))]
        self.dense_layers = [l for l in range(self.n_layers) if l not in self.moe_layers]
        if self.family != "dense" and not self.moe_layers:
            raise ValueError(f"{self.dir}: no router tensor found ({self.router_name(0)} ...)")
        if self.moe_layers:
            self.n_experts = int(self.st.get(self.router_name(self.moe_layers[0])).shape[0])
            self.top_k = int(self.text["num_experts_per_tok"])
        else:
            self.n_experts = self.top_k = 0

    def _layer(self, l: int) -> str:
        return f"{self.prefix}.{l}.{self.mlp}"

    def router_name(self, l: int) -> str:
        return f"{self._layer(l)}.{'router' if self.family in ('gpt_oss', 'llama4') else 'gate'}.weight"

    def router(self, l: int):
        """(W_r [E, H] float64, b_r [E] float64 or None, correction bias [E] float64 or None)."""
        w = self.st.get(self.router_name(l)).astype(np.float64)
        bias = corr = None
        if self.family == "gpt_oss":
            bias = self.st.get(f"{self._layer(l)}.router.bias").astype(np.float64)
        if self.family == "deepseek_v3":
            corr = self.st.get(f"{self._layer(l)}.gate.e_score_correction_bias").astype(np.float64)
        return w, bias, corr

    def swiglu(self) -> bool:
        return self.family not in NOT_SWIGLU

    def dense_gate_up(self, l: int):
        """(W_g, W_u) [inter, H] float64 of the dense MLP of layer l."""
        base = self._layer(l)
        return (self.st.get(f"{base}.gate_proj.weight").astype(np.float64),
                self.st.get(f"{base}.up_proj.weight").astype(np.float64))

    def expert_gate_up(self, l: int, e: int):
        """(W_g, W_u) [inter, H] float64 of routed expert e of layer l."""
        base = f"{self._layer(l)}.experts"
        if self.family == "llama4":  # fused [E, H, 2 * inter], x @ W; first half gate, second half up
            gu = self.st.get(f"{base}.gate_up_proj")[e].astype(np.float64)
            inter = gu.shape[1] // 2
            return gu[:, :inter].T, gu[:, inter:].T
        if self.model_type == "mixtral":
            return (self.st.get(f"{base}.{e}.w1.weight").astype(np.float64),
                    self.st.get(f"{base}.{e}.w3.weight").astype(np.float64))
        return (self.st.get(f"{base}.{e}.gate_proj.weight").astype(np.float64),
                self.st.get(f"{base}.{e}.up_proj.weight").astype(np.float64))


# ---------------------------------------------------------------------------------------------
# Routing, float64, as docs/phase3.md defines it per family
# ---------------------------------------------------------------------------------------------


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of each row, best first; ties go to the lower index."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact to float64 rounding, no overflow


def _softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def route(model: Model, x: np.ndarray, layer: int, with_scores: bool = False):
    """(logits [N, E], selected [N, k] int64, weights [N, k]) for mlp_input x (widened to float64); with_scores
    adds the [N, E] scores the final top-k ranks (-inf for experts outside the kept DeepSeek groups)."""
    w_r, b_r, corr = model.router(layer)
    x = np.asarray(x, dtype=np.float64)
    logits = x @ w_r.T
    if b_r is not None:
        logits = logits + b_r
    k, fam, cfg = model.top_k, model.family, model.text
    n, n_exp = logits.shape
    rows = np.arange(n)[:, None]
    if fam == "deepseek_v3":
        s = _sigmoid(logits)
        c = s + corr
        n_group, topk_group = int(cfg.get("n_group", 1)), int(cfg.get("topk_group", 1))
        if n_exp % n_group:
            raise ValueError(f"{n_exp} experts do not split into n_group={n_group} groups")
        grouped = c.reshape(n, n_group, n_exp // n_group)
        group_score = np.sort(grouped, axis=-1)[..., -2:].sum(axis=-1)  # sum of the two largest c
        kept_groups = _top_indices(group_score, topk_group)
        keep = np.zeros((n, n_group), dtype=bool)
        keep[rows, kept_groups] = True
        c_masked = np.where(np.repeat(keep, n_exp // n_group, axis=1), c, -np.inf)
        sel = _top_indices(c_masked, k)
        ranked = c_masked
        wts = s[rows, sel]
        if cfg.get("norm_topk_prob", False):
            wts = wts / (wts.sum(axis=1, keepdims=True) + 1e-20)
        wts = wts * float(cfg.get("routed_scaling_factor", 1.0))
    elif fam == "softmax_topk":
        p = _softmax(logits)
        sel = _top_indices(p, k)
        ranked = p
        wts = p[rows, sel]
        if model.model_type == "mixtral" or cfg.get("norm_topk_prob", False):
            wts = wts / wts.sum(axis=1, keepdims=True)
    elif fam == "gpt_oss":
        sel = _top_indices(logits, k)
        ranked = logits
        wts = _softmax(logits[rows, sel])
    elif fam == "llama4":
        sel = _top_indices(logits, k)
        ranked = logits
        wts = _sigmoid(logits[rows, sel])
    else:
        raise ValueError(f"no routing for family {fam}")
    if with_scores:
        return logits, sel.astype(np.int64), wts, ranked
    return logits, sel.astype(np.int64), wts


def agreement(engine_sel: np.ndarray, sel: np.ndarray):
    """(matches, total): the capture's (token, expert) choices the recomputation also makes."""
    hit = (engine_sel[:, :, None] == sel[:, None, :]).any(axis=2)
    return int(hit.sum()), int(engine_sel.size)


def agreement_up_to_ties(engine_sel: np.ndarray, sel: np.ndarray, ranked: np.ndarray) -> int:
    """Matches when an engine choice also counts whose recomputed score equals (exactly, float64) the score of
    the k-th recomputed choice: a tie that the engine broke differently (torch.topk does not promise the lower
    index). Not part of docs/phase3.md; reported beside agreement."""
    rows = np.arange(sel.shape[0])[:, None]
    kth = ranked[rows[:, 0], sel[:, -1]]
    hit = (engine_sel[:, :, None] == sel[:, None, :]).any(axis=2) | (ranked[rows, engine_sel] >= kth[:, None])
    return int(hit.sum())


def matched_weight_diff(engine_sel, engine_w, sel, wts) -> float:
    eq = engine_sel[:, :, None] == sel[:, None, :]  # [N, k_engine, k]
    diffs = np.abs(engine_w[:, :, None].astype(np.float64) - wts[:, None, :])
    return float(diffs[eq].max()) if eq.any() else 0.0


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def load_stats(sel: np.ndarray, wts: np.ndarray, n_experts: int) -> dict:
    n, k = sel.shape
    counts = np.bincount(sel.ravel(), minlength=n_experts).astype(np.int64)
    p = counts / float(n * k)
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(n_experts)) if n_experts > 1 else 0.0
    mean = counts.mean()
    onehot = np.zeros((n, n_experts), dtype=np.int64)
    onehot[np.arange(n)[:, None], sel] = 1
    return {
        "load_counts": counts,
        "load_entropy": entropy,
        "load_cv": float(counts.std() / mean),
        "max_over_mean_load": float(counts.max() / mean),
        "never_chosen": int((counts == 0).sum()),
        "topk_weight_concentration": float(np.mean(wts.max(axis=1) / wts.sum(axis=1))),
        "coactivation": onehot.T @ onehot,
    }


def sample_indices(n: int, s: int) -> np.ndarray:
    """All N tokens when N <= S, else floor(i N / S) for i = 0..S-1."""
    if n <= s:
        return np.arange(n, dtype=np.int64)
    i = np.arange(s, dtype=np.int64)
    return (i * n) // s


def swiglu_vectors(x: np.ndarray, w_g: np.ndarray, w_u: np.ndarray):
    """Per row of x: (sparsity of h = silu(g) * u, |cos(g, u)|) with g = x W_g^T, u = x W_u^T."""
    g = x @ w_g.T
    u = x @ w_u.T
    h = g * _sigmoid(g) * u
    a = np.abs(h)
    m = a.max(axis=1)
    frac = (a < SPARSITY_RELATIVE * m[:, None]).mean(axis=1)
    sparsity = np.where(m > 0, frac, 1.0)
    ng, nu = np.linalg.norm(g, axis=1), np.linalg.norm(u, axis=1)
    dot = np.abs((g * u).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((ng > 0) & (nu > 0), dot / (ng * nu), 0.0)
    return sparsity, cos


def cka_matrix(xs: list[np.ndarray]) -> np.ndarray:
    """Linear CKA between every pair of [S, H] matrices (centred over tokens, K = X X^T)."""
    grams = []
    for x in xs:
        xc = x - x.mean(axis=0, keepdims=True)
        grams.append(xc @ xc.T)
    norms = [float(np.sqrt((k * k).sum())) for k in grams]
    n = len(xs)
    out = np.eye(n)
    for a in range(n):
        for b in range(a + 1, n):
            if norms[a] > 0 and norms[b] > 0:
                out[a, b] = out[b, a] = float((grams[a] * grams[b]).sum()) / (norms[a] * norms[b])
            else:
                out[a, b] = out[b, a] = 0.0
    return out


def stages(cka: np.ndarray, threshold: float = CKA_STAGE_THRESHOLD) -> list[dict]:
    n = cka.shape[0]
    out, s = [], 0
    while s < n:
        e = s
        while e + 1 < n and cka[s, e + 1] >= threshold:
            e += 1
        out.append({"start_layer": s, "end_layer": e, "start_fraction": s / n, "end_fraction": (e + 1) / n})
        s = e + 1
    return out


# ---------------------------------------------------------------------------------------------
# Reading and checking a capture
# ---------------------------------------------------------------------------------------------


def _attr_str(f, name):
    if name not in f.attrs:
        raise CaptureFormatError(f"/: attribute '{name}' is missing")
    v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else str(v)


def _attr_int(f, name):
    if name not in f.attrs:
        raise CaptureFormatError(f"/: attribute '{name}' is missing")
    return int(np.asarray(f.attrs[name]).reshape(()))


def _dataset(f, path, shape, kinds):
    if path not in f or not isinstance(f[path], h5py.Dataset):
        raise CaptureFormatError(f"/{path} is missing")
    d = f[path]
    if d.shape != tuple(shape):
        raise CaptureFormatError(f"/{path} has shape {list(d.shape)}, expected {list(shape)}")
    if d.dtype.kind not in kinds:
        raise CaptureFormatError(f"/{path} has type {d.dtype}, expected {kinds}")
    return d[()]


def validate_capture(path, model: Model | None = None) -> dict:
    """Read and check a capture; returns {"attrs", "token_ids", "prompt_index", "position", "layers": [dict per
    layer with mlp_input and the optional router datasets], "top_token_ids", "top_probs"}. Raises
    CaptureFormatError naming the object that is wrong."""
    with h5py.File(path, "r") as f:
        if _attr_str(f, "format") != FORMAT:
            raise CaptureFormatError(f"/: attribute 'format' is {_attr_str(f, 'format')!r}, not {FORMAT!r}")
        if _attr_str(f, "format_version") != FORMAT_VERSION:
            raise CaptureFormatError(f"/: format_version {_attr_str(f, 'format_version')!r} is not {FORMAT_VERSION!r}")
        attrs = {k: _attr_str(f, k) for k in ("model", "model_type", "engine")}
        attrs.update({k: _attr_int(f, k) for k in ("num_hidden_layers", "hidden_size", "n_tokens", "n_prompts")})
        n, h, n_layers = attrs["n_tokens"], attrs["hidden_size"], attrs["num_hidden_layers"]
        if n < 1 or h < 1 or n_layers < 1:
            raise CaptureFormatError("/: n_tokens, hidden_size and num_hidden_layers must be positive")
        if model is not None:
            if h != model.hidden:
                raise CaptureFormatError(f"/: hidden_size {h} but config.json says {model.hidden}")
            if n_layers != model.n_layers:
                raise CaptureFormatError(f"/: num_hidden_layers {n_layers} but config.json says {model.n_layers}")
        out = {"attrs": attrs,
               "token_ids": _dataset(f, "tokens/token_ids", (n,), "iu"),
               "prompt_index": _dataset(f, "tokens/prompt_index", (n,), "iu"),
               "position": _dataset(f, "tokens/position", (n,), "iu")}
        pi = out["prompt_index"].astype(np.int64)
        if pi.min() < 0 or pi.max() >= attrs["n_prompts"] or np.any(np.diff(pi) < 0):
            raise CaptureFormatError("/tokens/prompt_index must be non-decreasing in [0, n_prompts)")
        layers = []
        for l in range(n_layers):
            g = f"layers/layer_{l:03d}"
            if g not in f:
                raise CaptureFormatError(f"/{g} is missing")
            x = _dataset(f, f"{g}/mlp_input", (n, h), "f")
            if not np.all(np.isfinite(x)):
                bad = np.argwhere(~np.isfinite(x))[0]
                raise CaptureFormatError(f"/{g}/mlp_input has a non-finite value (token {bad[0]}, column {bad[1]})")
            rec = {"mlp_input": x}
            if f"{g}/router_logits" in f:
                e = f[f"{g}/router_logits"].shape[-1] if f[f"{g}/router_logits"].ndim == 2 else -1
                if model is not None:
                    e = model.n_experts
                rec["router_logits"] = _dataset(f, f"{g}/router_logits", (n, e), "f")
            if f"{g}/selected_experts" in f:
                ds = f[f"{g}/selected_experts"]
                k = ds.shape[-1] if ds.ndim == 2 else -1
                if model is not None:
                    k = model.top_k
                sel = _dataset(f, f"{g}/selected_experts", (n, k), "iu")
                if model is not None and (sel.min() < 0 or sel.max() >= model.n_experts):
                    raise CaptureFormatError(f"/{g}/selected_experts has an expert outside [0, {model.n_experts})")
                rec["selected_experts"] = sel
                if f"{g}/routing_weights" in f:
                    rec["routing_weights"] = _dataset(f, f"{g}/routing_weights", (n, k), "f")
            elif f"{g}/routing_weights" in f:
                raise CaptureFormatError(f"/{g}/routing_weights without selected_experts")
            if model is not None and l in model.dense_layers and len(rec) > 1:
                raise CaptureFormatError(f"/{g} has router datasets but layer {l} is dense in the checkpoint")
            layers.append(rec)
        out["layers"] = layers
        if "output/top_probs" not in f:
            raise CaptureFormatError("/output/top_probs is missing")
        p = f["output/top_probs"].shape[-1] if f["output/top_probs"].ndim == 2 else -1
        if p < MIN_TOP_P:
            raise CaptureFormatError(f"/output/top_probs keeps {p} probabilities per token, fewer than {MIN_TOP_P}")
        out["top_token_ids"] = _dataset(f, "output/top_token_ids", (n, p), "iu")
        out["top_probs"] = _dataset(f, "output/top_probs", (n, p), "f")
    return out


# ---------------------------------------------------------------------------------------------
# Everything
# ---------------------------------------------------------------------------------------------


def reference_stats(capture_path, model_dir, sample_tokens: int = DEFAULT_SAMPLE_TOKENS) -> dict:
    """All of docs/phase3.md's statistics in float64; dict layout in the module docstring."""
    model = Model(model_dir)
    cap = validate_capture(capture_path, model)
    a = cap["attrs"]
    n, n_layers = a["n_tokens"], a["num_hidden_layers"]
    idx = sample_indices(n, sample_tokens)
    layers = []
    for l in range(n_layers):
        x = cap["layers"][l]["mlp_input"].astype(np.float64)
        rec = {"layer": l, "moe": l in model.moe_layers}
        xs = x[idx]
        vec_sparsity, vec_cos = [], []
        if rec["moe"]:
            logits, sel, wts, ranked = route(model, x, l, with_scores=True)
            rec.update(router_logits=logits, selected_experts=sel, routing_weights=wts)
            c = cap["layers"][l]
            rec["agreement"] = rec["agreement_matches"] = rec["agreement_total"] = None
            rec["agreement_up_to_ties"] = None
            rec["routing_weights_max_abs_diff"] = rec["router_logits_max_abs_diff"] = None
            if "selected_experts" in c:
                m, t = agreement(c["selected_experts"].astype(np.int64), sel)
                rec.update(agreement=m / t, agreement_matches=m, agreement_total=t,
                           agreement_up_to_ties=agreement_up_to_ties(c["selected_experts"].astype(np.int64), sel,
                                                                     ranked) / t)
                if "routing_weights" in c:
                    rec["routing_weights_max_abs_diff"] = matched_weight_diff(
                        c["selected_experts"].astype(np.int64), c["routing_weights"], sel, wts)
            if "router_logits" in c:
                rec["router_logits_max_abs_diff"] = float(np.abs(c["router_logits"].astype(np.float64) - logits).max())
            rec.update(load_stats(sel, wts, model.n_experts))
            if model.swiglu():
                sel_s = sel[idx]
                for e in range(model.n_experts):
                    rows = np.nonzero((sel_s == e).any(axis=1))[0]
                    if rows.size:
                        w_g, w_u = model.expert_gate_up(l, e)
                        sp, co = swiglu_vectors(xs[rows], w_g, w_u)
                        vec_sparsity.append(sp)
                        vec_cos.append(co)
        elif model.swiglu():
            w_g, w_u = model.dense_gate_up(l)
            sp, co = swiglu_vectors(xs, w_g, w_u)
            vec_sparsity.append(sp)
            vec_cos.append(co)
        if vec_sparsity:
            sp, co = np.concatenate(vec_sparsity), np.concatenate(vec_cos)
            rec.update(c1_sparsity=float(sp.mean()), c3_gate_coherence=float(co.mean()), c1_vectors=int(sp.size))
        else:
            rec.update(c1_sparsity=None, c3_gate_coherence=None, c1_vectors=0)
        layers.append(rec)

    def constant(key):
        per = [r[key] for r in layers]
        vals = [v for v in per if v is not None]
        return {"per_layer": per, "median": float(np.median(vals)) if vals else None, "pending": not vals}

    top = cap["top_probs"].astype(np.float64)
    cka = cka_matrix([cap["layers"][l]["mlp_input"].astype(np.float64)[idx] for l in range(n_layers)])
    st = stages(cka)
    agreements = [r["agreement"] for r in layers if r.get("agreement") is not None]
    return {
        "capture": str(capture_path), "model_dir": str(model_dir), "model_type": model.model_type,
        "family": model.family, "num_hidden_layers": n_layers, "hidden_size": a["hidden_size"], "n_tokens": n,
        "n_prompts": a["n_prompts"], "num_experts": model.n_experts, "top_k": model.top_k,
        "moe_layers": list(model.moe_layers), "dense_layers": list(model.dense_layers),
        "sample_tokens": sample_tokens, "sampled_token_indices": idx, "layers": layers,
        "C1": constant("c1_sparsity"), "C2": float(top[:, :8].sum(axis=1).mean()), "C3": constant("c3_gate_coherence"),
        "C5": {"cka": cka, "count": len(st), "stages": st},
        "agreement_min": min(agreements) if agreements else None,
    }


# ---------------------------------------------------------------------------------------------
# Bad captures for the error tests, made on the fly from a good one
# ---------------------------------------------------------------------------------------------


def read_raw(path) -> tuple[dict, dict]:
    """(root attributes, {dataset path: array}) of an HDF5 file, in file order."""
    attrs, data = {}, {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            attrs[k] = v.decode() if isinstance(v, bytes) else v
        f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return attrs, data


def write_raw(path, attrs: dict, data: dict) -> None:
    """Write attributes and datasets (groups created as needed) deterministically: libver earliest, no times."""
    with h5py.File(path, "w", libver="earliest") as f:
        for k, v in attrs.items():
            f.attrs[k] = v if not isinstance(v, (int, np.integer)) else np.int64(v)
        for name in sorted(data):
            f.create_dataset(name, data=data[name], track_times=False)


def truncate(attrs: dict, data: dict, n_tokens: int) -> tuple[dict, dict]:
    """The first n_tokens tokens of a capture (n_prompts adjusted)."""
    attrs = dict(attrs)
    data = {k: v[:n_tokens] for k, v in data.items()}
    attrs["n_tokens"] = np.int64(n_tokens)
    attrs["n_prompts"] = np.int64(int(data["tokens/prompt_index"].max()) + 1)
    return attrs, data


BAD_CAPTURES = {
    "missing_layer": "the last layer's group /layers/layer_LLL is absent",
    "wrong_hidden_size": "/layers/layer_000/mlp_input is [N, H - 1] (config.json and the hidden_size attribute say H)",
    "nan_mlp_input": "one NaN in /layers/layer_000/mlp_input (token 3, column 5)",
    "token_count_mismatch": "/output/top_probs and /output/top_token_ids have N - 1 rows (everything else N)",
}


def make_bad_captures(good_path, out_dir, n_tokens: int = 12) -> dict:
    """Write one defective copy of GOOD (truncated to its first n_tokens tokens) per BAD_CAPTURES entry into
    OUT_DIR as NAME.h5; returns {name: path}. Also writes OUT_DIR/good_truncated.h5 (no defect), the
    control that must pass."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    attrs, data = truncate(*read_raw(good_path), n_tokens)
    n_layers = int(attrs["num_hidden_layers"])
    paths = {}

    def emit(name, a, d):
        p = out_dir / f"{name}.h5"
        write_raw(p, a, d)
        paths[name] = p

    emit("good_truncated", attrs, data)
    last = f"layers/layer_{n_layers - 1:03d}/"
    emit("missing_layer", attrs, {k: v for k, v in data.items() if not k.startswith(last)})
    d = dict(data)
    d["layers/layer_000/mlp_input"] = data["layers/layer_000/mlp_input"][:, :-1].copy()
    emit("wrong_hidden_size", attrs, d)
    d = dict(data)
    x = data["layers/layer_000/mlp_input"].copy()
    x[3, 5] = np.nan
    d["layers/layer_000/mlp_input"] = x
    emit("nan_mlp_input", attrs, d)
    d = dict(data)
    d["output/top_probs"] = data["output/top_probs"][:-1]
    d["output/top_token_ids"] = data["output/top_token_ids"][:-1]
    emit("token_count_mismatch", attrs, d)
    return paths


def make_wider_dtype_capture(good_path, out_path) -> None:
    """A copy of GOOD with every dataset in another type that holds its values exactly (docs/phase3.md
    accepts integers and floats of at most 8 bytes): float32 -> float64, ids and indices -> unsigned
    or 64-bit integers. The phase-3 results must be those of GOOD."""
    attrs, data = read_raw(good_path)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    wide = {}
    for name, a in data.items():
        if a.dtype == np.float32:
            wide[name] = a.astype(np.float64)
        elif name.endswith("selected_experts"):
            wide[name] = a.astype(np.uint64)
        elif name == "tokens/prompt_index":
            wide[name] = a.astype(np.uint16)
        elif name == "tokens/position":
            wide[name] = a.astype(np.int64)
        else:
            wide[name] = a
    write_raw(out_path, attrs, wide)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return o


def summary(ref: dict) -> str:
    lines = [f"{ref['capture']}: {ref['model_type']} ({ref['family']}), N={ref['n_tokens']} tokens, "
             f"L={ref['num_hidden_layers']}, E={ref['num_experts']}, k={ref['top_k']}, "
             f"S={len(ref['sampled_token_indices'])} sampled"]
    for r in ref["layers"]:
        s = f"  layer {r['layer']:3d} {'moe  ' if r['moe'] else 'dense'}"
        if r["moe"]:
            ag = "n/a" if r["agreement"] is None else f"{r['agreement']:.6f} ({r['agreement_matches']}/{r['agreement_total']})"
            wd = "n/a" if r["routing_weights_max_abs_diff"] is None else f"{r['routing_weights_max_abs_diff']:.3g}"
            ld = "n/a" if r["router_logits_max_abs_diff"] is None else f"{r['router_logits_max_abs_diff']:.3g}"
            if r["agreement_up_to_ties"] is not None and r["agreement_up_to_ties"] != r["agreement"]:
                ag += f" [{r['agreement_up_to_ties']:.6f} up to ties]"
            s += (f" agreement {ag}, |dw|max {wd}, |dlogits|max {ld}; load {r['load_counts'].tolist()} "
                  f"entropy {r['load_entropy']:.4f} cv {r['load_cv']:.4f} max/mean {r['max_over_mean_load']:.4f} "
                  f"never {r['never_chosen']} conc {r['topk_weight_concentration']:.4f};")
        c1 = "n/a" if r["c1_sparsity"] is None else f"{r['c1_sparsity']:.6f}"
        c3 = "n/a" if r["c3_gate_coherence"] is None else f"{r['c3_gate_coherence']:.6f}"
        lines.append(s + f" C1 {c1} C3 {c3} ({r['c1_vectors']} vectors)")
    fmt = lambda c: "pending" if c["pending"] else f"{c['median']:.6f}"  # noqa: E731
    lines.append(f"  C1 {fmt(ref['C1'])}  C2 {ref['C2']:.6f}  C3 {fmt(ref['C3'])}  C5 {ref['C5']['count']} stages "
                 + " ".join(f"[{s['start_fraction']:.3f}, {s['end_fraction']:.3f})" for s in ref["C5"]["stages"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?")
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("--sample-tokens", type=int, default=DEFAULT_SAMPLE_TOKENS)
    ap.add_argument("--json", help="write the whole dict (arrays as lists) to this file")
    ap.add_argument("--make-bad", nargs=2, metavar=("GOOD", "OUT_DIR"), help="write the error-test captures")
    ap.add_argument("--make-wide", nargs=2, metavar=("GOOD", "OUT"),
                    help="write GOOD with its datasets in wider types (float64, uint64 ids)")
    ap.add_argument("--min-agreement", type=float, default=0.999, help="exit 1 when a layer agrees less")
    args = ap.parse_args(argv)
    if args.make_bad:
        for name, p in make_bad_captures(*args.make_bad).items():
            print(f"{p}: {BAD_CAPTURES.get(name, 'no defect (control)')}")
        return 0
    if args.make_wide:
        make_wider_dtype_capture(*args.make_wide)
        return 0
    if not args.capture or not args.model_dir:
        ap.error("CAPTURE and MODEL_DIR are required")
    try:
        ref = reference_stats(args.capture, args.model_dir, args.sample_tokens)
    except (CaptureFormatError, ValueError, KeyError, OSError) as e:
        print(f"phase3_reference: error: {e}", file=sys.stderr)
        return 1
    print(summary(ref))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(_jsonable(ref), f, indent=1)
    if ref["agreement_min"] is not None and ref["agreement_min"] < args.min_agreement:
        print(f"agreement {ref['agreement_min']:.6f} < {args.min_agreement}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
