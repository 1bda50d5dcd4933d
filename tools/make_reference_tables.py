#!/usr/bin/env python3
"""Generate the reference tables that vindex_mpi's C++ unit tests compare against.

The expected values come from torch and numpy (never from hand-written numbers), so the tests
check the C++ FP8 decoding, spectral statistics and quantiles against independent implementations.

    python3 tools/make_reference_tables.py --out tests/fixtures/reference

Writes:
  fp8_e4m3fn.txt       256 lines "<code> <float32 bits as 8 hex digits>", decoded by torch
  stats_cases.json     singular-value spectra with var@k, sv_ratio, Frobenius norm, stable and effective rank
  quantile_cases.json  float64 samples with np.quantile (linear), mean, median, min, max
  mxfp4_transformers.json  every MXFP4 byte (two e2m1 nibbles) under 16 e8m0 scales from 0 to 254,
                       decoded by transformers' own convert_moe_packed_tensors (GPT-OSS loading)
  dequant_*.f32        raw little-endian float32 matrices of the kimi_k2_tiny fixture, dequantized by
                       torch exactly as DeepSeek's weight_dequant does (fp8 -> float32, times the
                       128x128 block scale in float32)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

SEED = 20250713
VAR_AT_K = [1, 2, 5, 64, 128]
QUANTILE_QS = [0.0, 0.25, 0.5, 0.75, 1.0]
QUANTILE_LENGTHS = [1, 2, 3, 4, 7, 100, 384, 1000]


def write_json(path: Path, payload: dict) -> None:
    # json.dumps writes floats with repr, the shortest string that round-trips to the same double.
    path.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")


# --------------------------------------------------------------------------------------------
# FP8 e4m3fn decode table
# --------------------------------------------------------------------------------------------


def write_fp8_table(path: Path) -> None:
    decoded = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).to(torch.float32)
    bits = decoded.view(torch.int32).numpy().view(np.uint32)
    path.write_text("".join(f"{code} {int(b):08x}\n" for code, b in enumerate(bits)))


# --------------------------------------------------------------------------------------------
# Spectral statistics
# --------------------------------------------------------------------------------------------


def spectral_stats(s: np.ndarray) -> dict:
    sq = s * s
    total = np.sum(sq)
    p = sq[sq > 0] / total
    return {
        "var_at_k": [[k, float(np.sum(sq[: min(k, len(s))]) / total)] for k in VAR_AT_K],
        "sv_ratio": float(s[0] / s[1]) if len(s) >= 2 and s[1] != 0 else None,
        "frobenius_norm": float(np.sqrt(total)),
        "stable_rank": float(total / sq[0]),
        "effective_rank": float(np.exp(-np.sum(p * np.log(p)))),
    }


def stats_spectra(rng: np.random.Generator) -> dict[str, np.ndarray]:
    gaussian = rng.standard_normal((64, 128))
    return {
        "single_value": np.array([3.5]),
        "two_values": np.array([2.0, 0.5]),
        "exact_ties": np.array([4.0] * 3 + [2.0] * 4 + [1.0] * 5 + [0.25] * 2),
        "zeros_at_tail": np.concatenate([np.sort(rng.uniform(0.1, 3.0, 15))[::-1], np.zeros(5)]),
        "second_value_zero": np.array([5.0, 0.0, 0.0]),
        "flat_300": np.sort(1.0 + 0.01 * rng.standard_normal(300))[::-1],
        "steep_power_law_2": (np.arange(200) + 1.0) ** -2.0,
        "marchenko_pastur_64": np.linalg.svd(gaussian, compute_uv=False),
    }


def write_stats_cases(path: Path, rng: np.random.Generator) -> None:
    cases = []
    for name, s in stats_spectra(rng).items():
        assert np.all(np.diff(s) <= 0), f"{name} must be descending"
        cases.append({"name": name, "singular_values": s.tolist(), **spectral_stats(s)})
    write_json(path, {
        "description": "numpy float64 reference; var_at_k is [[k, value], ...] with k clipped to len(singular_values); "
                       "sv_ratio is null when len < 2 or s1 == 0",
        "cases": cases,
    })


# --------------------------------------------------------------------------------------------
# Quantiles
# --------------------------------------------------------------------------------------------


def quantile_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(0.5, 0.2, n)
    if n >= 4:
        # Repeated values exercise ties between neighbouring order statistics.
        picks = rng.choice(n, size=max(2, n // 20), replace=False)
        x[picks[1:]] = x[picks[0]]
    return x


def write_quantile_cases(path: Path, rng: np.random.Generator) -> None:
    cases = []
    for n in QUANTILE_LENGTHS:
        x = quantile_sample(n, rng)
        cases.append({
            "values": x.tolist(),  # unsorted, as the C++ side receives them
            "quantiles": [[q, float(np.quantile(x, q))] for q in QUANTILE_QS],
            "mean": float(np.mean(x)),
            "median": float(np.median(x)),
            "min": float(np.min(x)),
            "max": float(np.max(x)),
        })
    write_json(path, {
        "description": "numpy float64 reference; quantiles are [[q, np.quantile(values, q)], ...] (linear method)",
        "cases": cases,
    })


# --------------------------------------------------------------------------------------------
# FP8 block dequantization of real fixture tensors
# --------------------------------------------------------------------------------------------

DEQUANT_CASES = {
    # file name -> tensor of tests/fixtures/kimi_k2_tiny (a tall and a wide matrix, both with
    # partial edge blocks)
    "dequant_L2_E5_down_proj.f32": "model.layers.2.mlp.experts.5.down_proj.weight",
    "dequant_L0_down_proj.f32": "model.layers.0.mlp.down_proj.weight",
}


def torch_dequantize(q: torch.Tensor, scale: torch.Tensor, block: int = 128) -> torch.Tensor:
    rows, cols = q.shape
    expanded = scale.repeat_interleave(block, dim=0)[:rows].repeat_interleave(block, dim=1)[:, :cols]
    return q.to(torch.float32) * expanded.to(torch.float32)


def write_dequant_cases(out: Path, fixture: Path) -> None:
    from safetensors.torch import load_file

    index = json.loads((fixture / "model.safetensors.index.json").read_text())["weight_map"]
    for file_name, tensor in DEQUANT_CASES.items():
        q = load_file(fixture / index[tensor])[tensor]
        scale = load_file(fixture / index[tensor + "_scale_inv"])[tensor + "_scale_inv"]
        w = torch_dequantize(q, scale).contiguous().numpy().astype("<f4")
        (out / file_name).write_bytes(w.tobytes())


# --------------------------------------------------------------------------------------------
# MXFP4 (GPT-OSS): transformers' dequantization of every byte under edge scales
# --------------------------------------------------------------------------------------------
MXFP4_SCALES = [0, 1, 2, 64, 100, 125, 126, 127, 128, 129, 130, 150, 200, 252, 253, 254]


def write_mxfp4_cases(path: Path) -> None:
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    # One expert, 16 rows (one scale each), one block of 16 bytes per row: bytes 0..255 in order.
    blocks = torch.arange(256, dtype=torch.int32).to(torch.uint8).reshape(1, 16, 1, 16)
    scales = torch.tensor(MXFP4_SCALES, dtype=torch.uint8).reshape(1, 16, 1)
    # transformers returns [experts, in (32 per block), out]: the transpose of the stored rows.
    decoded = convert_moe_packed_tensors(blocks, scales, dtype=torch.float32)[0].T.contiguous()
    bits = decoded.numpy().astype("<f4").view("<u4")
    write_json(path, {"source": "transformers.integrations.mxfp4.convert_moe_packed_tensors",
                      "blocks": "uint8 [1, 16, 1, 16] holding bytes 0..255 in order", "scales": MXFP4_SCALES,
                      "rows": 16, "cols": 32, "float32_bits": [f"{int(b):08x}" for b in bits.ravel()]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/reference"), help="output directory")
    parser.add_argument("--fixture", type=Path, default=Path("tests/fixtures/kimi_k2_tiny"),
                        help="the kimi_k2_tiny fixture whose tensors are dequantized")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    write_fp8_table(args.out / "fp8_e4m3fn.txt")
    write_stats_cases(args.out / "stats_cases.json", rng)
    write_quantile_cases(args.out / "quantile_cases.json", rng)
    write_dequant_cases(args.out, args.fixture)
    write_mxfp4_cases(args.out / "mxfp4_transformers.json")
    (args.out / "README.md").write_text(
        "# Reference tables for the C++ unit tests\n\n"
        "Computed by torch/numpy; generated, do not edit. Regenerate with:\n\n"
        "    python3 tools/make_reference_tables.py --out tests/fixtures/reference\n"
    )
    print(f"wrote reference tables to {args.out}")


if __name__ == "__main__":
    main()
