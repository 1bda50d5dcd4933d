"""capture.py --pooled: per-prompt representations for cross-model CKA (`vindex_mpi cka`).

Instead of every token's MLP input (phase 3's capture), this keeps for every prompt and every hidden state
of the model two vectors: the mean over the prompt's tokens and the last token's. That is small enough to
keep (prompts x representations x hidden x 2 values) whatever the prompts' lengths, and it is what
comparing two models needs: their tokenizers differ, their prompts do not.

The file format `vindex-pooled-capture` (format_version "1", docs/cross_cka.md):
  attributes  format, format_version, model, model_type, engine, tokenization, capture_dtype,
              storage_dtype, representation (strings); num_hidden_layers, n_representations,
              hidden_size, n_prompts (int64)
  /prompts/sha256    uint8 [P, 32]  SHA-256 of each prompt's UTF-8 text, exactly as it was tokenized
  /prompts/n_tokens  int64 [P]      tokens of each prompt (special tokens included)
  /pooled/mean       [R, P, H]      mean over the prompt's tokens of hidden state r (float32 or float16)
  /pooled/last       [R, P, H]      the prompt's last token's hidden state r
R = num_hidden_layers + 1: transformers' output_hidden_states, i.e. the embedding output, then each
layer's output (for decoders whose model applies a final norm, the last one is after it, as transformers
returns it). Encoders (BERT and its kin) are loaded with AutoModel; decoders as capture.py loads them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from staged_h5 import StagedH5

FORMAT = "vindex-pooled-capture"
FORMAT_VERSION = "1"
# model_type values loaded as encoders (AutoModel: no language-model head, bidirectional attention)
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta", "deberta-v2",
                 "camembert", "albert"}
REPRESENTATION = ("hidden_states: the embedding output, then each layer's output, as transformers' "
                  "output_hidden_states returns them")


def prompt_digests(prompts: list[str]) -> np.ndarray:
    return np.array([np.frombuffer(hashlib.sha256(p.encode("utf-8")).digest(), np.uint8) for p in prompts])


def load_encoder(model_dir: Path, device: str, dtype_name: str, error):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel
    try:
        config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
        model = AutoModel.from_pretrained(str(model_dir), trust_remote_code=False,
                                          dtype={"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name])
    except Exception as e:  # noqa: BLE001 -- any loader failure is a user-facing error
        raise error(f"cannot load {model_dir} with transformers {transformers.__version__} (AutoModel): {e}") from None
    model.eval()
    if device == "cuda":
        if not torch.cuda.is_available():
            raise error("--device cuda: torch sees no CUDA device")
        model.to("cuda")
    return config, model


class PooledWriter(StagedH5):
    """The whole file in PATH's directory under a temporary name, renamed to PATH when complete."""

    def __init__(self, path: Path, attrs: dict, digests, n_tokens, n_repr: int, hidden: int, storage, error):
        super().__init__(path, error)
        f = self.f
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        for key in ("model", "model_type", "engine", "tokenization", "capture_dtype"):
            f.attrs[key] = str(attrs[key])
        f.attrs["storage_dtype"] = np.dtype(storage).name
        f.attrs["representation"] = REPRESENTATION
        for key in ("num_hidden_layers", "n_representations", "hidden_size", "n_prompts"):
            f.attrs[key] = np.int64(attrs[key])
        p = f.create_group("prompts")
        p.create_dataset("sha256", data=digests, track_times=False)
        p.create_dataset("n_tokens", data=np.asarray(n_tokens, np.int64), track_times=False)
        g = f.create_group("pooled")
        shape = (n_repr, len(n_tokens), hidden)
        self.mean = g.create_dataset("mean", shape, storage, track_times=False)
        self.last = g.create_dataset("last", shape, storage, track_times=False)


def run_pooled(args, capture) -> dict:
    """capture: the capture module (its loaders, tokenizer and CaptureError)."""
    import torch
    import transformers
    error = capture.CaptureError
    model_dir, gguf_file = Path(args.model), None
    if model_dir.suffix == ".gguf" and model_dir.is_file():
        model_dir, gguf_file = model_dir.parent, model_dir.name
    elif not (model_dir / "config.json").is_file():
        raise error(f"{model_dir} is neither a model directory (no config.json) nor a .gguf file")
    if args.max_tokens_per_prompt is not None:
        raise error("--max-tokens-per-prompt cannot be used with --pooled: the prompt digests name whole prompts, "
                    "so a truncated capture would pass as one of the same prompts")
    prompts = capture.read_prompts(Path(args.prompts))
    if args.max_prompts is not None:
        if args.max_prompts < 4:
            raise error("--max-prompts must be >= 4 (the debiased CKA needs at least 4 prompts)")
        prompts = prompts[:args.max_prompts]
    if not Path(args.out).resolve().parent.is_dir():
        raise error(f"output directory {Path(args.out).resolve().parent} does not exist")
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    raw_type = None if gguf_file else capture.read_config_json(model_dir).get("model_type")
    if raw_type in ENCODER_TYPES:
        config, model = load_encoder(model_dir, args.device, args.dtype, error)
        note = "encoder loaded with AutoModel"
    else:
        config, model, note = capture.load_model(model_dir, args.device, args.dtype, gguf_file)
    tc = capture.text_config(config)
    n_layers, hidden, vocab = int(tc.num_hidden_layers), int(tc.hidden_size), int(tc.vocab_size)
    ids, tokenization = capture.tokenize(prompts, model_dir, vocab, args.token_ids_from_text,
                                         args.max_tokens_per_prompt, gguf_file)
    storage = {"float32": np.float32, "float16": np.float16}[args.storage]
    attrs = dict(model=args.model_name or (Path(gguf_file).stem if gguf_file else model_dir.resolve().name),
                 model_type=raw_type or config.model_type, engine=f"transformers {transformers.__version__}",
                 tokenization=tokenization, capture_dtype=args.dtype, num_hidden_layers=n_layers,
                 n_representations=n_layers + 1, hidden_size=hidden, n_prompts=len(prompts))
    writer = PooledWriter(Path(args.out), attrs, prompt_digests(prompts), [len(x) for x in ids], n_layers + 1,
                          hidden, storage, error)
    try:
        device = model.get_input_embeddings().weight.device
        extra = {} if raw_type in ENCODER_TYPES else {"use_cache": False}
        with torch.inference_mode():
            for p, x in enumerate(ids):  # one prompt per pass: no padding to leave out
                out = model(input_ids=torch.tensor([x], dtype=torch.long, device=device), output_hidden_states=True,
                            **extra)
                states = out.hidden_states
                if len(states) != n_layers + 1:
                    raise error(f"the model returned {len(states)} hidden states, expected {n_layers + 1}")
                h = np.stack([s[0].float().cpu().numpy().astype(np.float64) for s in states])  # [R, T, H]
                if h.shape[1:] != (len(x), hidden) or not np.all(np.isfinite(h)):
                    raise error(f"prompt {p}: hidden states of shape {h.shape[1:]} or non-finite values")
                mean, last = h.mean(axis=1), h[:, -1, :]
                if storage == np.float16 and max(np.abs(mean).max(), np.abs(last).max()) > np.finfo(np.float16).max:
                    raise error(f"prompt {p}: a representation is beyond float16's range; use --storage float32")
                writer.mean[:, p, :] = mean.astype(storage)
                writer.last[:, p, :] = last.astype(storage)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return dict(attrs=attrs, note=note)
