#!/usr/bin/env python3
"""The seed builder's method on the GPU, for the benchmark beside vindex_mpi's CUDA backend in the
same run: the routed down_proj experts of a checkpoint (F8_E4M3 + 128x128 block scales) are
dequantized with torch and passed to torch.linalg.svdvals in float32 batches of 64, as the seed
card's script does. Prints one JSON line: ms per expert (svdvals only, after a warm-up batch).

  seed_method.py --model DIR [--matrices 64] [--batch 64]
"""
import argparse
import json
import os
import re
import struct
import time

import torch


def routed_down_experts(model, limit):
    index_path = os.path.join(model, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index_path))["weight_map"].values())) if os.path.exists(index_path) \
        else ["model.safetensors"]
    found = []
    for name in files:
        path = os.path.join(model, name)
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        for tensor, info in header.items():
            if re.fullmatch(r"model\.layers\.\d+\.mlp\.experts\.\d+\.down_proj\.weight", tensor):
                found.append((path, 8 + n, tensor, info, header.get(tensor + "_scale_inv")))
    found.sort(key=lambda t: t[2])
    return found[:limit]


def load(path, data_start, info, scale_info):
    with open(path, "rb") as f:
        f.seek(data_start + info["data_offsets"][0])
        raw = f.read(info["data_offsets"][1] - info["data_offsets"][0])
        rows, cols = info["shape"]
        w = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(torch.float8_e4m3fn).reshape(rows, cols)
        w = w.to(torch.float32)
        if scale_info is not None:
            f.seek(data_start + scale_info["data_offsets"][0])
            s = torch.frombuffer(bytearray(f.read(scale_info["data_offsets"][1] - scale_info["data_offsets"][0])),
                                 dtype=torch.float32).reshape(scale_info["shape"])
            s = s.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
            w = w * s
    return w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--matrices", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    experts = routed_down_experts(args.model, args.matrices)
    stack = torch.stack([load(p, d, i, s) for p, d, _, i, s in experts]).cuda()
    torch.linalg.svdvals(stack[: min(8, len(stack))])  # warm-up: cuSOLVER handles, workspaces
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for start in range(0, len(stack), args.batch):
        torch.linalg.svdvals(stack[start:start + args.batch])
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) * 1e3 / len(stack)
    print(json.dumps({"method": f"seed: torch.linalg.svdvals fp32, batches of {args.batch}", "matrices": len(stack),
                      "ms_per_expert": ms, "device": torch.cuda.get_device_name(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
