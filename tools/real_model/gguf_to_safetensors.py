#!/usr/bin/env python3
"""Converts a dense Llama-architecture GGUF checkpoint (llama.cpp's format) into a Hugging Face
checkpoint directory: config.json and model.safetensors in float32, with transformers' tensor names.
Every tensor is decoded by llama.cpp's own Python package (gguf.quants.dequantize), so the float32
values are exactly the ones its dequantization gives; attn_q and attn_k get back the row order of
the Hugging Face checkpoint (llama.cpp's converter interleaves the rotary halves of each head; the
inverse is the one transformers applies when it loads a GGUF). The tokenizer is not converted.

  gguf_to_safetensors.py MODEL.gguf OUT_DIR

Needs only gguf and numpy (the venv of fetch_smollm2.sh). OUT_DIR must not exist; it is written
under a temporary name and renamed when complete.
"""
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

LAYER_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                "output.weight": "lm_head.weight"}


class ConversionError(Exception):
    pass


def scalar(reader, key, required=True):
    f = reader.fields.get(key)
    if f is None:
        if required:
            raise ConversionError(f"metadata key {key} is missing")
        return None
    if len(f.types) == 1 and f.types[0].name == "STRING":
        return bytes(f.parts[-1]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def hf_name(name):
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[3] == "weight" and parts[2] in LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}.weight"
    raise ConversionError(f"tensor {name} has no Hugging Face Llama name (only dense Llama checkpoints convert)")


def unpermute(w, n_head):
    """The inverse of llama.cpp's convert_hf_to_gguf.py LlamaModel.permute (as transformers'
    reverse_permute_weights): rows of each head back from interleaved to rotate-half order."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def config_of(reader, tensors):
    arch = scalar(reader, "general.architecture")
    if arch != "llama":
        raise ConversionError(f"general.architecture is {arch!r}; this converter writes dense Llama checkpoints only")
    if any("_exps" in n or "ffn_gate_inp" in n for n in tensors):
        raise ConversionError("the checkpoint has experts; this converter writes dense Llama checkpoints only")
    heads = scalar(reader, "llama.attention.head_count")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
        "hidden_size": scalar(reader, "llama.embedding_length"),
        "intermediate_size": scalar(reader, "llama.feed_forward_length"),
        "num_hidden_layers": scalar(reader, "llama.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": scalar(reader, "llama.attention.head_count_kv", False) or heads,
        "rms_norm_eps": scalar(reader, "llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": scalar(reader, "llama.rope.freq_base", False) or 10000.0,
        "max_position_embeddings": scalar(reader, "llama.context_length"),
        "vocab_size": int(tensors["token_embd.weight"].shape[1]),
        "tie_word_embeddings": "output.weight" not in tensors,
        "hidden_act": "silu",
    }
    name = scalar(reader, "general.name", False)
    if name:
        config["_name_or_path"] = name
    return config


def convert(gguf_path: Path, out: Path):
    if out.exists():
        raise ConversionError(f"{out} exists")
    reader = GGUFReader(gguf_path)
    tensors = {t.name: t for t in reader.tensors}
    config = config_of(reader, tensors)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    header, offset, order = {}, 0, []
    for name, t in tensors.items():
        rows_cols = [int(d) for d in reversed(t.shape.tolist())]  # GGUF dims are inner-first
        nbytes = 4 * int(np.prod(rows_cols))
        header[hf_name(name)] = {"dtype": "F32", "shape": rows_cols, "data_offsets": [offset, offset + nbytes]}
        order.append((name, t, rows_cols))
        offset += nbytes
    header["__metadata__"] = {"format": "pt", "converted_from": gguf_path.name,
                              "converter": "vindex_mpi tools/real_model/gguf_to_safetensors.py"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(tmp / "model.safetensors", "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for name, t, rows_cols in order:
            w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(rows_cols)
            if name.endswith("attn_q.weight"):
                w = unpermute(w, config["num_attention_heads"])
            elif name.endswith("attn_k.weight"):
                w = unpermute(w, config["num_key_value_heads"])
            f.write(np.ascontiguousarray(w, dtype="<f4").tobytes())
        f.flush()
        os.fsync(f.fileno())
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tmp.rename(out)
    return config


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        config = convert(Path(argv[1]), Path(argv[2]))
    except (ConversionError, KeyError, ValueError, OSError) as e:
        print(f"gguf_to_safetensors: {argv[1]}: {e}", file=sys.stderr)
        return 3
    print(f"{argv[2]}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, float32")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
