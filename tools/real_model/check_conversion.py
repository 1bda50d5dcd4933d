#!/usr/bin/env python3
"""Checks tools/real_model/gguf_to_safetensors.py against transformers' own GGUF loader, by hand
(needs torch, transformers, gguf and safetensors; not run in CI): every tensor of the conversion
equals, bit for bit, the tensor transformers loads from the GGUF itself, and both models complete a
prompt with the same greedy tokens.

  check_conversion.py MODEL.gguf CONVERTED_DIR [--prompt "The capital of France is"]

Run on SmolLM2-135M-Instruct.Q4_1.gguf with transformers 5.24.0 and torch 2.15.0+cu132 (CPU): 272 tensors, none
differs (lm_head is tied to the embedding); both continue the prompt with " Paris.".
"""
import argparse
import sys
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf", type=Path)
    ap.add_argument("converted", type=Path)
    ap.add_argument("--prompt", default="The capital of France is")
    a = ap.parse_args()
    import torch
    import transformers
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a.gguf.parent, gguf_file=a.gguf.name)
    from_gguf = AutoModelForCausalLM.from_pretrained(a.gguf.parent, gguf_file=a.gguf.name, dtype=torch.float32)
    loaded = from_gguf.state_dict()
    converted = load_file(a.converted / "model.safetensors")
    differ = [k for k in converted if k not in loaded or not torch.equal(converted[k], loaded[k])]
    missing = [k for k in loaded if k not in converted and not (k == "lm_head.weight" and from_gguf.config.tie_word_embeddings)]
    ids = tok(a.prompt, return_tensors="pt")
    texts = []
    for model in (from_gguf, AutoModelForCausalLM.from_pretrained(a.converted, dtype=torch.float32)):
        out = model.generate(**ids, max_new_tokens=5, do_sample=False)
        texts.append(tok.decode(out[0][ids["input_ids"].shape[1]:]))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: {len(converted)} tensors, "
          f"{len(differ)} differ {differ[:5]}, {len(missing)} missing {missing[:5]}; continuations {texts}")
    return 0 if not differ and not missing and texts[0] == texts[1] else 1


if __name__ == "__main__":
    sys.exit(main())
