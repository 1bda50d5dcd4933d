#!/usr/bin/env python3
"""Writes a checkpoint with Kimi-K2-Instruct's exact layout -- config.json, 61 shards, every
tensor name, shape and dtype, the index -- as sparse files: the headers are real, the ~1 TB of
tensor data is holes that take no disk. For planning at full scale (`vindex_mpi --dry-run`) and
for timing the header validation of ~140,000 tensors; the zero weights are not for spectra.

  python3 tools/make_sparse_kimi_k2.py --out /tmp/kimi-k2-sparse
"""
import argparse
import json
import math
import os
import struct

CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "kimi_k2",
    "_name_or_path": "moonshotai/Kimi-K2-Instruct (sparse layout copy)",
    "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "first_k_dense_replace": 1, "moe_layer_freq": 1,
    "n_routed_experts": 384, "n_shared_experts": 1, "num_experts_per_tok": 8,
    "n_group": 1, "topk_group": 1, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
    "norm_topk_prob": True, "routed_scaling_factor": 2.827, "num_attention_heads": 64,
    "num_key_value_heads": 64, "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "v_head_dim": 128, "vocab_size": 163840, "num_nextn_predict_layers": 0,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
}
SIZES = {"F8_E4M3": 1, "BF16": 2, "F32": 4}


def fp8(tensors, name, rows, cols):
    tensors.append((name, "F8_E4M3", [rows, cols]))
    tensors.append((name + "_scale_inv", "F32", [math.ceil(rows / 128), math.ceil(cols / 128)]))


def layer_tensors(layer):
    c, t, p = CONFIG, [], f"model.layers.{layer}"
    heads, nope, rope, v = c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    H = c["hidden_size"]
    t.append((f"{p}.input_layernorm.weight", "BF16", [H]))
    t.append((f"{p}.post_attention_layernorm.weight", "BF16", [H]))
    fp8(t, f"{p}.self_attn.q_a_proj.weight", c["q_lora_rank"], H)
    t.append((f"{p}.self_attn.q_a_layernorm.weight", "BF16", [c["q_lora_rank"]]))
    fp8(t, f"{p}.self_attn.q_b_proj.weight", heads * (nope + rope), c["q_lora_rank"])
    fp8(t, f"{p}.self_attn.kv_a_proj_with_mqa.weight", c["kv_lora_rank"] + rope, H)
    t.append((f"{p}.self_attn.kv_a_layernorm.weight", "BF16", [c["kv_lora_rank"]]))
    fp8(t, f"{p}.self_attn.kv_b_proj.weight", heads * (nope + v), c["kv_lora_rank"])
    fp8(t, f"{p}.self_attn.o_proj.weight", H, heads * v)
    if layer < c["first_k_dense_replace"]:
        I = c["intermediate_size"]
        fp8(t, f"{p}.mlp.gate_proj.weight", I, H)
        fp8(t, f"{p}.mlp.up_proj.weight", I, H)
        fp8(t, f"{p}.mlp.down_proj.weight", H, I)
        return t
    I, E = c["moe_intermediate_size"], c["n_routed_experts"]
    t.append((f"{p}.mlp.gate.weight", "BF16", [E, H]))
    t.append((f"{p}.mlp.gate.e_score_correction_bias", "F32", [E]))
    for e in range(E):
        fp8(t, f"{p}.mlp.experts.{e}.gate_proj.weight", I, H)
        fp8(t, f"{p}.mlp.experts.{e}.up_proj.weight", I, H)
        fp8(t, f"{p}.mlp.experts.{e}.down_proj.weight", H, I)
    S = I * c["n_shared_experts"]
    fp8(t, f"{p}.mlp.shared_experts.gate_proj.weight", S, H)
    fp8(t, f"{p}.mlp.shared_experts.up_proj.weight", S, H)
    fp8(t, f"{p}.mlp.shared_experts.down_proj.weight", H, S)
    return t


def write_sparse_shard(path, tensors):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in tensors:
        size = SIZES[dtype] * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)  # the data: a hole
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    layers = CONFIG["num_hidden_layers"]
    weight_map, total = {}, 0
    for layer in range(layers):
        tensors = layer_tensors(layer)
        if layer == 0:
            tensors.insert(0, ("model.embed_tokens.weight", "BF16", [CONFIG["vocab_size"], CONFIG["hidden_size"]]))
        if layer == layers - 1:
            tensors += [("model.norm.weight", "BF16", [CONFIG["hidden_size"]]),
                        ("lm_head.weight", "BF16", [CONFIG["vocab_size"], CONFIG["hidden_size"]])]
        shard = f"model-{layer + 1}-of-{layers}.safetensors"
        total += write_sparse_shard(os.path.join(a.out, shard), tensors)
        weight_map.update({name: shard for name, _, _ in tensors})
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    print(f"wrote {a.out}: {len(weight_map)} tensors, {total / 1e12:.2f} TB of (sparse) data in {layers} shards")


if __name__ == "__main__":
    main()
