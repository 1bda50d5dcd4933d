#!/usr/bin/env python3
"""Generate the tiny, deterministic checkpoints that vindex_mpi's tests and demo read.

Each checkpoint mimics what the Hugging Face hub serves for DeepSeek-V3 / Kimi-K2-Instruct
(config.json, tensor names, dtypes, FP8 block quantization, sharding with an index), but with
matrices small enough to commit. Every MLP and router matrix is built from a chosen singular-value
profile, and DIR/reference.npz holds float64 numpy spectra of what was actually written, so the
C++ results can be checked against an independent implementation.

    python3 tools/make_fixture.py --kind kimi_k2_tiny --out tests/fixtures/kimi_k2_tiny
    python3 tools/make_fixture.py --kind steep_mixed  --out tests/fixtures/steep_mixed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

# Typical entry size of trained projection weights; keeps FP8/F16/BF16 rounding realistic.
RMS_TARGET = 0.023

# DeepSeek-V3 FP8 format: e4m3fn values with one float32 scale per 128x128 block.
FP8_BLOCK = 128
FP8_E4M3_MAX = 448.0
FP8_AMAX_FLOOR = 1e-12  # an all-zero block would otherwise get scale 0 and dequantize to NaN

SAFETENSORS_METADATA = {"format": "pt"}  # what transformers' save_pretrained writes

# Marker stored in place of a torch dtype for tensors kept as FP8 + weight_scale_inv.
FP8 = "fp8_e4m3_block"


# --------------------------------------------------------------------------------------------
# Spectral profiles and random matrices
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """How a matrix's singular values are chosen: "flat", "mp" or "power" (s_j = (j+1)^-exponent)."""

    kind: str
    exponent: float = 0.0


FLAT = Profile("flat")
MP = Profile("mp")  # plain Gaussian matrix: Marchenko-Pastur spectrum, like Kimi-K2's experts


def power(exponent: float) -> Profile:
    return Profile("power", exponent)


def tensor_rng(base_seed: int, name: str) -> np.random.Generator:
    # Seeding from the name (not from a shared stream) keeps every existing tensor byte-identical
    # when tensors are added or reordered.
    name_key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([base_seed, name_key])


def haar_orthonormal(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    q, r_factor = np.linalg.qr(rng.standard_normal((n, r)))
    # QR alone is not Haar-distributed; making diag(R) positive removes LAPACK's sign bias.
    return q * np.sign(np.diag(r_factor))


def profile_singular_values(profile: Profile, r: int, rng: np.random.Generator) -> np.ndarray:
    j = np.arange(r, dtype=np.float64)
    if profile.kind == "flat":
        return np.abs(1.0 + 0.05 * rng.standard_normal(r))
    if profile.kind == "power":
        return (j + 1.0) ** -profile.exponent
    raise ValueError(f"profile {profile.kind!r} has no closed-form singular values")


def random_matrix(profile: Profile, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A float64 [rows, cols] matrix with the given spectral shape and entry RMS RMS_TARGET."""
    if profile.kind == "mp":
        w = rng.standard_normal((rows, cols))
    else:
        r = min(rows, cols)
        s = profile_singular_values(profile, r, rng)
        u = haar_orthonormal(rng, rows, r)
        v = haar_orthonormal(rng, cols, r)
        w = (u * s) @ v.T
    return w * (RMS_TARGET / math.sqrt(np.mean(w * w)))


def norm_vector(size: int, rng: np.random.Generator) -> np.ndarray:
    # RMSNorm gains of a trained model sit near 1.
    return 1.0 + 0.02 * rng.standard_normal(size)


def bias_vector(size: int, rng: np.random.Generator) -> np.ndarray:
    return 0.01 * rng.standard_normal(size)


# --------------------------------------------------------------------------------------------
# FP8 block quantization (DeepSeek-V3 convention)
# --------------------------------------------------------------------------------------------


def block_grid(rows: int, cols: int) -> tuple[int, int]:
    return -(-rows // FP8_BLOCK), -(-cols // FP8_BLOCK)


def quantize_fp8_blockwise(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (e4m3fn weight, float32 weight_scale_inv) such that w ~= q * scale per block.

    DeepSeek names the per-block multiplier "weight_scale_inv" although it is the scale itself
    (amax / 448); dequantization multiplies by it.
    """
    w = w.to(torch.float32)
    rows, cols = w.shape
    scale = torch.empty(block_grid(rows, cols), dtype=torch.float32)
    q = torch.empty((rows, cols), dtype=torch.float8_e4m3fn)
    for bi in range(scale.shape[0]):
        for bj in range(scale.shape[1]):
            window = (slice(bi * FP8_BLOCK, (bi + 1) * FP8_BLOCK), slice(bj * FP8_BLOCK, (bj + 1) * FP8_BLOCK))
            block = w[window]
            s = block.abs().amax().clamp(min=FP8_AMAX_FLOOR) / FP8_E4M3_MAX
            q[window] = (block / s).to(torch.float8_e4m3fn)
            scale[bi, bj] = s
    return q, scale


def dequantize_fp8_blockwise(q: torch.Tensor, scale_inv: torch.Tensor) -> torch.Tensor:
    rows, cols = q.shape
    per_entry = scale_inv.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)
    return q.to(torch.float32) * per_entry[:rows, :cols]


# --------------------------------------------------------------------------------------------
# Checkpoint layout
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analyzed:
    """Where a matrix goes in reference.npz: layer, group (e.g. "down_proj", "router"), expert id."""

    layer: int
    group: str
    expert_id: int


@dataclass(frozen=True)
class TensorPlan:
    name: str
    shape: tuple[int, ...]
    storage: torch.dtype | str  # a torch dtype, or FP8 for e4m3 + weight_scale_inv
    init: Profile | Callable[[int, np.random.Generator], np.ndarray]
    shard: int = 1
    analyzed: Analyzed | None = None


@dataclass(frozen=True)
class Checkpoint:
    config: dict
    tensors: list[TensorPlan]
    num_shards: int
    base_seed: int
    readme_title: str


def attention_plans(cfg: dict, layer: int, storage, shard: int, norm_dtype: torch.dtype) -> list[TensorPlan]:
    """Multi-head latent attention tensors, named as in DeepSeek-V3 (q_lora_rank None: V2-Lite style)."""
    p = f"model.layers.{layer}.self_attn"
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    nope, rope, v = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    kv_lora = cfg["kv_lora_rank"]
    plans = []
    if cfg["q_lora_rank"] is None:
        plans.append(TensorPlan(f"{p}.q_proj.weight", (heads * (nope + rope), hidden), storage, MP, shard))
    else:
        q_lora = cfg["q_lora_rank"]
        plans += [
            TensorPlan(f"{p}.q_a_proj.weight", (q_lora, hidden), storage, MP, shard),
            TensorPlan(f"{p}.q_a_layernorm.weight", (q_lora,), norm_dtype, norm_vector, shard),
            TensorPlan(f"{p}.q_b_proj.weight", (heads * (nope + rope), q_lora), storage, MP, shard),
        ]
    plans += [
        TensorPlan(f"{p}.kv_a_proj_with_mqa.weight", (kv_lora + rope, hidden), storage, MP, shard),
        TensorPlan(f"{p}.kv_a_layernorm.weight", (kv_lora,), norm_dtype, norm_vector, shard),
        TensorPlan(f"{p}.kv_b_proj.weight", (heads * (nope + v), kv_lora), storage, MP, shard),
        TensorPlan(f"{p}.o_proj.weight", (hidden, heads * v), storage, MP, shard),
        TensorPlan(f"model.layers.{layer}.input_layernorm.weight", (hidden,), norm_dtype, norm_vector, shard),
        TensorPlan(f"model.layers.{layer}.post_attention_layernorm.weight", (hidden,), norm_dtype, norm_vector, shard),
    ]
    return plans


def swiglu_plans(prefix: str, hidden: int, inner: int, storage, profile: Profile, shard: int,
                 layer: int, group_prefix: str, expert_id: int) -> list[TensorPlan]:
    shapes = {"gate_proj": (inner, hidden), "up_proj": (inner, hidden), "down_proj": (hidden, inner)}
    return [
        TensorPlan(f"{prefix}.{proj}.weight", shape, storage, profile, shard,
                   Analyzed(layer, group_prefix + proj, expert_id))
        for proj, shape in shapes.items()
    ]


def dense_mlp_plans(cfg: dict, layer: int, storage, profile: Profile, shard: int) -> list[TensorPlan]:
    return swiglu_plans(f"model.layers.{layer}.mlp", cfg["hidden_size"], cfg["intermediate_size"],
                        storage, profile, shard, layer, "", -1)


def router_plans(cfg: dict, layer: int, dtype: torch.dtype, profile: Profile, shard: int) -> list[TensorPlan]:
    p = f"model.layers.{layer}.mlp.gate"
    n = cfg["n_routed_experts"]
    return [
        TensorPlan(f"{p}.weight", (n, cfg["hidden_size"]), dtype, profile, shard, Analyzed(layer, "router", -1)),
        TensorPlan(f"{p}.e_score_correction_bias", (n,), torch.float32, bias_vector, shard),
    ]


def shared_expert_plans(cfg: dict, layer: int, storage, profile: Profile, shard: int) -> list[TensorPlan]:
    inner = cfg["moe_intermediate_size"] * cfg["n_shared_experts"]
    return swiglu_plans(f"model.layers.{layer}.mlp.shared_experts", cfg["hidden_size"], inner,
                        storage, profile, shard, layer, "shared_", 0)


def routed_expert_plans(cfg: dict, layer: int, storage, profile: Profile,
                        shard_of_expert: Callable[[int], int]) -> list[TensorPlan]:
    plans = []
    for e in range(cfg["n_routed_experts"]):
        plans += swiglu_plans(f"model.layers.{layer}.mlp.experts.{e}", cfg["hidden_size"],
                              cfg["moe_intermediate_size"], storage, profile, shard_of_expert(e), layer, "", e)
    return plans


def kimi_k2_tiny() -> Checkpoint:
    config = {
        "_name_or_path": "vindex-demo/kimi-k2-tiny",
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "kimi_k2",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "first_k_dense_replace": 1,
        "hidden_act": "silu",
        "hidden_size": 200,
        "initializer_range": 0.02,
        "intermediate_size": 300,
        "kv_lora_rank": 64,
        "max_position_embeddings": 4096,
        "moe_intermediate_size": 136,
        "moe_layer_freq": 1,
        "n_group": 1,
        "n_routed_experts": 8,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": 4,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 4,
        "num_key_value_heads": 4,
        "num_nextn_predict_layers": 0,
        "q_lora_rank": 96,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 16,
        "quantization_config": {
            "activation_scheme": "dynamic",
            "fmt": "e4m3",
            "quant_method": "fp8",
            "weight_block_size": [FP8_BLOCK, FP8_BLOCK],
        },
        "rms_norm_eps": 1e-6,
        "rope_theta": 50000.0,
        "routed_scaling_factor": 2.827,
        "scoring_func": "sigmoid",
        "tie_word_embeddings": False,
        "topk_group": 1,
        "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "v_head_dim": 32,
        "vocab_size": 160,
    }
    bf16 = torch.bfloat16
    vocab, hidden = config["vocab_size"], config["hidden_size"]
    expert_profiles = {1: MP, 2: power(0.5), 3: power(1.0)}
    # Layer 2's experts straddle shards 2 and 3 so readers must merge one layer from two files.
    moe_shard = {1: lambda e: 2, 2: lambda e: 2 if e < 4 else 3, 3: lambda e: 4}
    router_shard = {1: 2, 2: 2, 3: 4}

    tensors = [TensorPlan("model.embed_tokens.weight", (vocab, hidden), bf16, MP, 1)]
    tensors += attention_plans(config, 0, FP8, 1, bf16)
    tensors += dense_mlp_plans(config, 0, FP8, FLAT, 1)
    for layer in (1, 2, 3):
        tensors += attention_plans(config, layer, FP8, layer, bf16)
        tensors += router_plans(config, layer, bf16, power(0.5), router_shard[layer])
        tensors += shared_expert_plans(config, layer, FP8, power(0.75), router_shard[layer])
        tensors += routed_expert_plans(config, layer, FP8, expert_profiles[layer], moe_shard[layer])
    tensors += [
        TensorPlan("model.norm.weight", (hidden,), bf16, norm_vector, 4),
        TensorPlan("lm_head.weight", (vocab, hidden), bf16, MP, 4),
    ]
    return Checkpoint(config, tensors, num_shards=4, base_seed=20250711,
                      readme_title="Kimi-K2-Instruct-shaped demo checkpoint (FP8 block-quantized, 4 shards)")


def steep_mixed() -> Checkpoint:
    config = {
        "_name_or_path": "vindex-test/steep-mixed",
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "first_k_dense_replace": 1,
        "hidden_act": "silu",
        "hidden_size": 300,
        "initializer_range": 0.02,
        "intermediate_size": 400,
        "kv_lora_rank": 32,
        "max_position_embeddings": 2048,
        "moe_intermediate_size": 136,
        "moe_layer_freq": 1,
        "n_group": 1,
        "n_routed_experts": 3,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": 2,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "num_nextn_predict_layers": 0,
        "q_lora_rank": None,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid",
        "tie_word_embeddings": False,
        "topk_group": 1,
        "topk_method": "noaux_tc",
        "torch_dtype": "float32",
        "use_cache": True,
        "v_head_dim": 16,
        "vocab_size": 64,
    }
    f32, f16, bf16 = torch.float32, torch.float16, torch.bfloat16
    vocab, hidden = config["vocab_size"], config["hidden_size"]

    tensors = [TensorPlan("model.embed_tokens.weight", (vocab, hidden), f32, MP)]
    tensors += attention_plans(config, 0, bf16, 1, f32)
    tensors += dense_mlp_plans(config, 0, f32, power(1.0), 1)

    # Layer 1: s_min/s_max ~ 5e-5, so (s_min/s_max)^2 ~ 3e-9 lies below float32 epsilon; an
    # implementation that accumulates s^2 or forms W^T W in float32 loses the tail here.
    tensors += attention_plans(config, 1, bf16, 1, f32)
    tensors += router_plans(config, 1, f32, power(0.5), 1)
    tensors += shared_expert_plans(config, 1, bf16, power(1.5), 1)
    tensors += routed_expert_plans(config, 1, f32, power(2.0), lambda e: 1)

    # Layer 2: F16 storage exercises the half-precision decode path.
    tensors += attention_plans(config, 2, bf16, 1, f32)
    tensors += router_plans(config, 2, f32, power(0.5), 1)
    tensors += shared_expert_plans(config, 2, f16, power(1.0), 1)
    tensors += routed_expert_plans(config, 2, f16, power(1.0), lambda e: 1)

    tensors += [
        TensorPlan("model.norm.weight", (hidden,), f32, norm_vector),
        TensorPlan("lm_head.weight", (vocab, hidden), bf16, MP),
    ]
    return Checkpoint(config, tensors, num_shards=1, base_seed=20250712,
                      readme_title="Unquantized single-file checkpoint with steep spectra and mixed F32/BF16/F16 experts")


KINDS: dict[str, Callable[[], Checkpoint]] = {"kimi_k2_tiny": kimi_k2_tiny, "steep_mixed": steep_mixed}


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def materialize(plan: TensorPlan, base_seed: int) -> dict[str, torch.Tensor]:
    rng = tensor_rng(base_seed, plan.name)
    if isinstance(plan.init, Profile):
        values = random_matrix(plan.init, *plan.shape, rng)
    else:
        values = plan.init(*plan.shape, rng)
    full = torch.from_numpy(values)
    if plan.storage == FP8:
        q, scale_inv = quantize_fp8_blockwise(full)
        return {plan.name: q, plan.name + "_scale_inv": scale_inv}
    return {plan.name: full.to(plan.storage)}


def shard_file_name(shard: int, num_shards: int) -> str:
    if num_shards == 1:
        return "model.safetensors"
    return f"model-{shard:05d}-of-{num_shards:05d}.safetensors"


def write_checkpoint(ckpt: Checkpoint, out: Path) -> list[str]:
    shards: dict[int, dict[str, torch.Tensor]] = {s: {} for s in range(1, ckpt.num_shards + 1)}
    for plan in ckpt.tensors:
        shards[plan.shard].update(materialize(plan, ckpt.base_seed))

    weight_map: dict[str, str] = {}
    total_size = 0
    for shard, tensors in shards.items():
        file_name = shard_file_name(shard, ckpt.num_shards)
        save_file(tensors, str(out / file_name), metadata=SAFETENSORS_METADATA)
        for name, t in tensors.items():
            weight_map[name] = file_name
            total_size += t.numel() * t.element_size()

    if ckpt.num_shards > 1:
        index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
        # Same serialization as transformers' save_pretrained.
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (out / "config.json").write_text(json.dumps(ckpt.config, indent=2, sort_keys=True) + "\n")
    return sorted(set(weight_map.values()))


def load_dequantized(out: Path, files: list[str]) -> dict[str, torch.Tensor]:
    """Read the written files back and return every non-scale tensor as float32."""
    stored: dict[str, torch.Tensor] = {}
    for file_name in files:
        stored.update(load_file(str(out / file_name)))
    result = {}
    for name, t in stored.items():
        if name.endswith("_scale_inv"):
            continue
        scale_inv = stored.get(name + "_scale_inv")
        result[name] = dequantize_fp8_blockwise(t, scale_inv) if scale_inv is not None else t.to(torch.float32)
    return result


def write_reference(ckpt: Checkpoint, out: Path, files: list[str]) -> None:
    # Spectra come from the files on disk, so the reference covers every rounding step the
    # C++ reader will see, not the float64 matrices we started from.
    weights = load_dequantized(out, files)
    groups: dict[tuple[int, str], list[tuple[int, np.ndarray]]] = {}
    for plan in ckpt.tensors:
        if plan.analyzed is not None:
            w = weights[plan.name].numpy().astype(np.float64)
            groups.setdefault((plan.analyzed.layer, plan.analyzed.group), []).append((plan.analyzed.expert_id, w))

    arrays: dict[str, np.ndarray] = {}
    for (layer, group), members in sorted(groups.items()):
        members.sort(key=lambda m: m[0])
        key = f"layer_{layer:03d}/{group}"
        arrays[f"{key}/singular_values"] = np.stack([np.linalg.svd(w, compute_uv=False) for _, w in members])
        arrays[f"{key}/expert_ids"] = np.array([e for e, _ in members], dtype=np.int32)
        arrays[f"{key}/frobenius_sq"] = np.array([np.sum(w * w) for _, w in members], dtype=np.float64)
    np.savez_compressed(out / "reference.npz", **arrays)


def write_readme(kind: str, ckpt: Checkpoint, out: Path, display_out: str) -> None:
    text = f"""# {kind}: {ckpt.readme_title}

Synthetic checkpoint in the Hugging Face DeepSeek-V3 layout (`{ckpt.config["_name_or_path"]}`), with
MLP/expert/router matrices built from chosen singular-value profiles. `reference.npz` holds float64
numpy spectra (`layer_LLL/<group>/singular_values`, `expert_ids`, `frobenius_sq`) of the matrices as
stored (dequantized to float32, then float64). Generated, do not edit; regenerate with:

    python3 tools/make_fixture.py --kind {kind} --out {display_out} --force
"""
    (out / "README.md").write_text(text)


# Everything the generator writes; --force removes only these so stale shards cannot linger.
OWNED_PATTERNS = ("*.safetensors", "model.safetensors.index.json", "config.json", "reference.npz", "README.md")


def prepare_out_dir(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            sys.exit(f"error: {out} is not empty (use --force to overwrite)")
        for pattern in OWNED_PATTERNS:
            for path in out.glob(pattern):
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def display_path(out: Path) -> str:
    repo_root = Path(__file__).resolve().parent.parent
    try:
        return out.resolve().relative_to(repo_root).as_posix()
    except ValueError:
        return out.as_posix()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True, choices=sorted(KINDS))
    parser.add_argument("--out", required=True, type=Path, help="output directory (created)")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty output directory")
    args = parser.parse_args()

    ckpt = KINDS[args.kind]()
    prepare_out_dir(args.out, args.force)
    files = write_checkpoint(ckpt, args.out)
    write_reference(ckpt, args.out, files)
    write_readme(args.kind, ckpt, args.out, display_path(args.out))
    print(f"wrote {args.kind} to {args.out}: {', '.join(files)}")


if __name__ == "__main__":
    main()
