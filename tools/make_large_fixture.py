#!/usr/bin/env python3
"""Writes a large synthetic DeepSeek-V3-layout checkpoint with numpy alone (no torch): a dense
layer 0 and --moe-layers layers of many experts in a single big shard, for memory, speed and
fault-tolerance tests rather than accuracy.

  make_large_fixture.py --out DIR [--experts 128] [--moe-layers 1] [--hidden 4096] [--inter 256] [--dtype F16|F8_E4M3]

F8_E4M3 needs the ml_dtypes package (pip install ml_dtypes) for the fp8 rounding and writes
128x128 block scales (weight_scale_inv) as DeepSeek-V3 and Kimi-K2 do. Values are Gaussian with
the dequantized standard deviation the seed card reports for Kimi-K2 (0.023).
"""
import argparse
import json
import os
import struct

import numpy as np

STD = 0.023
BLOCK = 128


def fp8_block_quantize(w):
    try:
        import ml_dtypes
        to_fp8 = lambda x: x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    except ImportError:  # the GPU machine has torch but perhaps not ml_dtypes
        import torch
        to_fp8 = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(torch.float8_e4m3fn).view(torch.uint8).numpy()

    rows, cols = w.shape
    br, bc = -(-rows // BLOCK), -(-cols // BLOCK)
    scale = np.zeros((br, bc), dtype=np.float32)
    q = np.zeros(w.shape, dtype=np.uint8)
    for i in range(br):
        for j in range(bc):
            block = w[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK]
            s = max(float(np.abs(block).max()), 1e-12) / 448.0
            scale[i, j] = s
            q[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK] = to_fp8(block / s)
    return q, scale


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--experts", type=int, default=128)
    p.add_argument("--moe-layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--inter", type=int, default=256)
    p.add_argument("--dtype", choices=["F16", "F8_E4M3"], default="F16")
    p.add_argument("--projections", default="gate,up,down", help="which expert projections to store")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)

    header, chunks, offset = {}, [], 0

    def add(name, dtype, array):
        nonlocal offset
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)

    def add_weight(name, rows, cols):
        w = rng.standard_normal((rows, cols), dtype=np.float32) * STD
        if a.dtype == "F16":
            add(name, "F16", w.astype(np.float16))
        else:
            q, scale = fp8_block_quantize(w)
            add(name, "F8_E4M3", q)
            add(name + "_scale_inv", "F32", scale)

    shapes = {"gate": (a.inter, a.hidden), "up": (a.inter, a.hidden), "down": (a.hidden, a.inter)}
    projections = a.projections.split(",")
    for proj in projections:  # layer 0: a small dense MLP
        rows, cols = shapes[proj]
        add_weight(f"model.layers.0.mlp.{proj}_proj.weight", rows, cols)
    for layer in range(1, a.moe_layers + 1):
        for e in range(a.experts):
            for proj in projections:
                rows, cols = shapes[proj]
                add_weight(f"model.layers.{layer}.mlp.experts.{e}.{proj}_proj.weight", rows, cols)

    text = json.dumps({"__metadata__": {"format": "pt"}, **header}, separators=(",", ":"))
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode())
        for c in chunks:
            f.write(c)
    config = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "_name_or_path": f"vindex-large-{a.moe_layers}x{a.experts}x{a.hidden}x{a.inter}-{a.dtype}",
        "num_hidden_layers": a.moe_layers + 1, "first_k_dense_replace": 1, "moe_layer_freq": 1,
        "hidden_size": a.hidden, "intermediate_size": a.inter, "moe_intermediate_size": a.inter,
        "n_routed_experts": a.experts, "n_shared_experts": 0, "num_experts_per_tok": 8,
    }
    if a.dtype == "F8_E4M3":
        config["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                         "weight_block_size": [BLOCK, BLOCK]}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {a.out}: {offset / 2**20:.1f} MiB of tensors in one shard")


if __name__ == "__main__":
    main()
