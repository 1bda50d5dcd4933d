#!/usr/bin/env python3
"""Regenerate the phase 3 capture fixtures tests/fixtures/capture/{deepseek_v3,qwen3_moe,kimi_k2_tiny}.h5.

Each is tools/capture/capture.py run on its tiny checkpoint -- tests/fixtures/hf/deepseek_v3 and
tests/fixtures/hf/qwen3_moe (transformers' own DeepseekV3ForCausalLM / Qwen3MoeForCausalLM), and the
repository's demo checkpoint tests/fixtures/kimi_k2_tiny (model_type kimi_k2, loaded as transformers'
DeepseekV3ForCausalLM; FP8 e4m3 with 128x128 block scales, dequantized to float32 on the CPU by capture.py)
-- on CPU in float32 over the 8 prompts below, token ids from UTF-8 bytes mod vocab_size (the fixtures have
no tokenizer), 12 tokens per prompt (kimi_k2_tiny: 9, to stay under 300 KB with its hidden size 200),
16 next-token probabilities, with --verify-experts (every expert module received exactly the rows of the
tokens the captured selection sends to it). After writing, the files are checked with the numpy reference
(tests/integration/phase3_reference.py, which decodes the FP8 weights itself):
  * the float64 recomputation agrees with the captured selected_experts on >= 99.9% of the choices, and
    the routing weights match (max |diff| < 1e-5);
  * deepseek_v3: the capture really routed group-limited with e_score_correction_bias (n_group 2,
    topk_group 1): every token's experts lie in one group of 4, and on some tokens a plain top-k of c,
    and a group-limited top-k without the correction bias, would have chosen differently;
  * kimi_k2_tiny (n_group 1, topk_group 1, so the group limit keeps every expert): reported, how many
    tokens a top-k without the correction bias would have chosen differently;
  * every file < 300 KB.
The files are deterministic (h5py libver="earliest", no timestamps): --check rebuilds them in a temporary
directory and compares bytes.

    python3 tools/capture/make_capture_fixtures.py            # write tests/fixtures/capture/*.h5
    python3 tools/capture/make_capture_fixtures.py --check    # rebuild in a temp dir, byte-compare

Needs the pyenv python3 with torch, transformers==4.57.1, safetensors, h5py. About 20 s on 2 cores.
The bad captures of the error tests are not files: phase3_reference.make_bad_captures() derives them from
deepseek_v3.h5 on the fly.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "capture"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import capture  # noqa: E402
import phase3_reference as p3  # noqa: E402

EXPECTED_TRANSFORMERS = "4.57.1"
# fixture name -> (checkpoint directory, tokens per prompt)
FIXTURES = {
    "deepseek_v3": (ROOT / "tests" / "fixtures" / "hf" / "deepseek_v3", 12),
    "qwen3_moe": (ROOT / "tests" / "fixtures" / "hf" / "qwen3_moe", 12),
    # hidden size 200 and 4 layers: 12 tokens per prompt would make mlp_input alone 307 KB
    "kimi_k2_tiny": (ROOT / "tests" / "fixtures" / "kimi_k2_tiny", 9),
}
TOP_P = 16
MAX_BYTES = 300_000
PROMPTS = [
    "The capital of France is Paris, and",
    "def fibonacci(n): return n if n < 2",
    "Photosynthesis converts light energy",
    "In 1969, the Apollo 11 mission landed",
    "SELECT name, age FROM users WHERE id",
    "Le chat est assis sur le tapis et dort",
    "1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89,",
    "To be, or not to be, that is the question",
]


def build(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.txt"
        prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
        for name, (model_dir, tokens_per_prompt) in FIXTURES.items():
            out = out_dir / f"{name}.h5"
            rc = capture.main(["--model", str(model_dir), "--out", str(out),
                               "--prompts", str(prompts), "--max-tokens-per-prompt", str(tokens_per_prompt),
                               "--top-p-count", str(TOP_P), "--device", "cpu", "--dtype", "float32",
                               "--token-ids-from-text", "--model-name", name, "--verify-experts"])
            if rc != 0:
                raise SystemExit(f"capture of {name} failed")
            paths.append(out)
    return paths


def check_deepseek_grouping(path: Path, model: p3.Model) -> list[str]:
    """The capture's choices respect n_group / topk_group and need the correction bias to be reproduced."""
    cap = p3.validate_capture(path, model)
    cfg = model.text
    n_group, topk_group, k = int(cfg["n_group"]), int(cfg["topk_group"]), model.top_k
    group_size = model.n_experts // n_group
    lines = []
    for l in model.moe_layers:
        x = cap["layers"][l]["mlp_input"].astype(np.float64)
        sel = cap["layers"][l]["selected_experts"].astype(np.int64)
        w_r, _, corr = model.router(l)
        s = p3._sigmoid(x @ w_r.T)
        groups_used = np.array([len(set((row // group_size).tolist())) for row in sel])
        if groups_used.max() > topk_group:
            raise SystemExit(f"{path}: layer {l}: a token's experts span {groups_used.max()} groups "
                             f"> topk_group {topk_group}")
        as_set = lambda a: [frozenset(r) for r in a.tolist()]  # noqa: E731
        engine = as_set(sel)
        plain = as_set(p3._top_indices(s + corr, k))  # no group limit
        no_bias = s.copy()
        gs = np.sort(no_bias.reshape(len(s), n_group, group_size), axis=-1)[..., -2:].sum(-1)
        keep = np.zeros((len(s), n_group), bool)
        keep[np.arange(len(s))[:, None], p3._top_indices(gs, topk_group)] = True
        nb = as_set(p3._top_indices(np.where(np.repeat(keep, group_size, axis=1), no_bias, -np.inf), k))
        n_plain = sum(a != b for a, b in zip(engine, plain))
        n_nobias = sum(a != b for a, b in zip(engine, nb))
        if n_plain == 0 or n_nobias == 0:
            raise SystemExit(f"{path}: layer {l}: the group limit ({n_plain} tokens) or the correction bias "
                             f"({n_nobias} tokens) changed no choice; the fixture would not test them")
        lines.append(f"layer {l}: every token's {k} experts in <= {topk_group} of {n_group} groups; a plain top-{k} "
                     f"of s + bias would differ on {n_plain}/{len(s)} tokens, group-limited without the bias on "
                     f"{n_nobias}/{len(s)}")
    return lines


def report_correction_bias(path: Path, model: p3.Model) -> list[str]:
    """How many tokens a top-k of s without e_score_correction_bias would choose differently (n_group 1: no
    group limit). Informative only."""
    cap = p3.validate_capture(path, model)
    k, lines = model.top_k, []
    for l in model.moe_layers:
        x = cap["layers"][l]["mlp_input"].astype(np.float64)
        engine = [frozenset(r) for r in cap["layers"][l]["selected_experts"].astype(np.int64).tolist()]
        w_r, _, _ = model.router(l)
        nb = [frozenset(r) for r in p3._top_indices(p3._sigmoid(x @ w_r.T), k).tolist()]
        lines.append(f"layer {l}: a top-{k} without the correction bias would differ on "
                     f"{sum(a != b for a, b in zip(engine, nb))}/{len(engine)} tokens")
    return lines


def verify(paths: list[Path]) -> None:
    for path in paths:
        name = path.stem
        model_dir = FIXTURES[name][0]
        ref = p3.reference_stats(path, model_dir)
        size = path.stat().st_size
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {size} bytes, "
              f"{ref['n_tokens']} tokens, {ref['n_prompts']} prompts")
        if size >= MAX_BYTES:
            raise SystemExit(f"{path}: {size} bytes >= {MAX_BYTES}")
        for r in ref["layers"]:
            if not r["moe"]:
                continue
            print(f"  layer {r['layer']}: agreement {r['agreement']:.6f} ({r['agreement_matches']}/"
                  f"{r['agreement_total']}), routing weights max |diff| {r['routing_weights_max_abs_diff']:.3g}, "
                  f"router logits max |diff| {r['router_logits_max_abs_diff']:.3g}")
            if r["agreement"] < 0.999 or r["routing_weights_max_abs_diff"] > 1e-5:
                raise SystemExit(f"{path}: layer {r['layer']}: the reference does not reproduce the capture")
        if name == "deepseek_v3":
            for line in check_deepseek_grouping(path, p3.Model(model_dir)):
                print("  " + line)
        if name == "kimi_k2_tiny":
            for line in report_correction_bias(path, p3.Model(model_dir)):
                print("  " + line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "capture")
    ap.add_argument("--check", action="store_true", help="rebuild in a temporary directory and compare bytes")
    args = ap.parse_args(argv)
    import transformers
    if transformers.__version__ != EXPECTED_TRANSFORMERS:
        print(f"warning: transformers {transformers.__version__}; the fixtures were made with {EXPECTED_TRANSFORMERS}",
              file=sys.stderr)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            paths = build(Path(tmp))
            verify(paths)
            bad = [p.name for p in paths
                   if not (args.out / p.name).exists() or not filecmp.cmp(p, args.out / p.name, shallow=False)]
            print("identical" if not bad else f"DIFFERENT: {bad}")
            return 0 if not bad else 1
    paths = build(args.out)
    for p in paths:
        os.chmod(p, 0o644)
    verify(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
