#!/usr/bin/env python3
"""Bad arguments and broken model files under mpiexec -n 2: each case must end the whole job
promptly with the documented exit code, one error message naming the file and tensor, and no
output file (final or partial) left behind.

  bad_inputs.py --mpiexec M --np-flag -n --binary B --fixture tests/fixtures/kimi_k2_tiny --work DIR
"""
import argparse
import json
import math
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time

import mpi_runner

USAGE, BAD_INPUT = 2, 3
failures = []


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def rewrite_header(path, edit_text):
    """Replaces the JSON header of a shard by edit_text(old_text), keeping the data bytes."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    text = edit_text(data[8:8 + n].decode())
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text.encode())) + text.encode() + data[8 + n:])


def rewrite_header_bytes(path, edit_bytes):
    """Like rewrite_header, on the raw header bytes (for invalid UTF-8)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    raw = edit_bytes(data[8:8 + n])
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def shard_of(model, tensor):
    index_path = os.path.join(model, "model.safetensors.index.json")
    if not os.path.exists(index_path):
        return "model.safetensors"
    return json.loads(open(index_path).read())["weight_map"][tensor]


def poke(model, tensor, element, value_bytes):
    """Overwrites bytes of one element of a tensor in its shard."""
    shard = os.path.join(model, shard_of(model, tensor))
    n, header = read_header(shard)
    info = header[tensor]
    size = {"F8_E4M3": 1, "U8": 1, "F32": 4, "BF16": 2, "F16": 2, "I32": 4}[info["dtype"]]
    with open(shard, "r+b") as f:
        f.seek(8 + n + info["data_offsets"][0] + element * size)
        f.write(value_bytes)


def edit_json(path, edit):
    doc = json.loads(open(path).read())
    edit(doc)
    open(path, "w").write(json.dumps(doc, indent=2))


EXPERT = "model.layers.3.mlp.experts.6.down_proj.weight"
MIXED_EXPERT = "model.layers.1.mlp.experts.2.down_proj.weight"  # F32 in the steep_mixed fixture
MXFP4_SCALES = "model.layers.1.mlp.experts.down_proj_scales"    # hf/gpt_oss_mxfp4: U8 [4, 64, 2]
LLAMA4_FUSED = "language_model.model.layers.1.feed_forward.experts.gate_up_proj"
GPTQ_DOWN = "model.layers.1.mlp.down_proj"  # postquant/gptq_*, awq_gemm: out 128, in 192


def edit_tensor(model, shard, tensor, edit):
    """Edits one tensor's header entry (a dict) in place."""
    def apply(text):
        head = json.loads(text)
        edit(head[tensor])
        return json.dumps(head)
    rewrite_header(os.path.join(model, shard), apply)


def cases(fixture_dir):
    """(name, expected exit code, [expected message parts], prepare(model, out), extra args[, fixture])."""
    def truncate(model, out):
        shard = os.path.join(model, "model-00003-of-00004.safetensors")
        os.truncate(shard, os.path.getsize(shard) - 1000)

    def long_header(model, out):
        shard = os.path.join(model, "model-00002-of-00004.safetensors")
        with open(shard, "r+b") as f:
            f.write(struct.pack("<Q", os.path.getsize(shard)))

    def huge_header(model, out):
        shard = os.path.join(model, "model-00002-of-00004.safetensors")
        with open(shard, "r+b") as f:
            f.write(struct.pack("<Q", 100_000_001))

    def nan_weight(model, out):
        poke(model, EXPERT, 200 * 136 - 5, b"\x7f")

    def nan_scale(model, out):
        poke(model, EXPERT + "_scale_inv", 3, struct.pack("<f", math.nan))

    def missing_shard(model, out):
        os.remove(os.path.join(model, "model-00004-of-00004.safetensors"))

    def shape_vs_config(model, out):
        edit_json(os.path.join(model, "config.json"), lambda c: c.update(moe_intermediate_size=128))

    def missing_scale(model, out):
        edit_json(os.path.join(model, "model.safetensors.index.json"),
                  lambda i: i["weight_map"].pop(EXPERT + "_scale_inv"))

    def bad_config_json(model, out):
        open(os.path.join(model, "config.json"), "a").write("}")

    def duplicate_name(model, out):
        def dup(text):
            head = json.loads(text)
            name = next(k for k in head if k != "__metadata__")
            entry = json.dumps({name: head[name]})[1:-1]
            return "{" + entry + "," + text[1:]
        rewrite_header(os.path.join(model, "model-00001-of-00004.safetensors"), dup)

    def unknown_dtype(model, out):
        rewrite_header(os.path.join(model, "model-00004-of-00004.safetensors"),
                       lambda t: t.replace('"F8_E4M3"', '"F8_E9M9"', 1))

    def overlapping_offsets(model, out):
        def overlap(text):
            head = json.loads(text)
            entries = sorted((v["data_offsets"][0], k) for k, v in head.items() if k != "__metadata__")
            second = entries[1][1]
            head[second]["data_offsets"] = [x - 1 for x in head[second]["data_offsets"]]
            return json.dumps(head)
        rewrite_header(os.path.join(model, "model-00003-of-00004.safetensors"), overlap)

    def deep_nesting(model, out):
        rewrite_header(os.path.join(model, "model-00002-of-00004.safetensors"),
                       lambda t: '{"deep":' + "[" * 100000 + "]" * 100000 + "," + t[1:])

    def invalid_utf8(model, out):
        rewrite_header_bytes(os.path.join(model, "model-00002-of-00004.safetensors"),
                             lambda raw: raw.replace(b'"pt"', b'"p\xff"', 1))

    def gapped_offsets(model, out):
        def gap(text):
            head = json.loads(text)
            entries = sorted((v["data_offsets"][0], k) for k, v in head.items() if k != "__metadata__")
            del head[entries[1][1]]  # the bytes of the second tensor are now covered by nothing
            return json.dumps(head)
        rewrite_header(os.path.join(model, "model-00003-of-00004.safetensors"), gap)

    def offsets_out_of_range(model, out):
        shard = "model-00004-of-00004.safetensors"
        _, head = read_header(os.path.join(model, shard))
        last = max((k for k in head if k != "__metadata__"), key=lambda k: head[k]["data_offsets"][1])
        def grow(entry):  # one more row than the file holds, consistently with the shape
            rows, cols = entry["shape"]
            entry["shape"] = [rows + 1, cols]
            entry["data_offsets"][1] += {"F8_E4M3": 1, "BF16": 2, "F32": 4}[entry["dtype"]] * cols
        edit_tensor(model, shard, last, grow)

    def count_overflow(model, out):
        edit_tensor(model, "model-00004-of-00004.safetensors", EXPERT,
                    lambda e: e.update(shape=[2 ** 32, 2 ** 32, 16]))

    def scale_wrong_shape(model, out):
        edit_tensor(model, shard_of(model, EXPERT + "_scale_inv"), EXPERT + "_scale_inv",
                    lambda e: e.update(shape=[4, 1]))  # same 16 bytes as [2, 2]

    def inf_scale(model, out):
        poke(model, EXPERT + "_scale_inv", 2, struct.pack("<f", math.inf))

    def inf_weight(model, out):
        poke(model, MIXED_EXPERT, 300 * 136 - 7, struct.pack("<f", -math.inf))

    def shard_name_outside(model, out):
        edit_json(os.path.join(model, "model.safetensors.index.json"),
                  lambda i: i["weight_map"].update({EXPERT: "../model-00004-of-00004.safetensors"}))

    def shard_symlink_outside(model, out):
        shard = os.path.join(model, "model-00004-of-00004.safetensors")
        outside = os.path.join(os.path.dirname(model), "elsewhere.safetensors")
        os.rename(shard, outside)
        os.symlink(outside, shard)

    def output_file_symlink(model, out):
        os.makedirs(out)
        target = os.path.join(os.path.dirname(out), "precious.h5")
        open(target, "w").write("not yours")
        os.symlink(target, os.path.join(out, "vindex.h5"))

    def mxfp4_nan_scale(model, out):
        poke(model, MXFP4_SCALES, 3 * 64 * 2 + 5, b"\xff")  # expert 3, row 2: e8m0 255 is NaN

    def fused_shape_vs_config(model, out):
        edit_json(os.path.join(model, "config.json"), lambda c: c["text_config"].update(intermediate_size=40))

    def unknown_architecture(model, out):
        edit_json(os.path.join(model, "config.json"), lambda c: c.update(model_type="mamba", architectures=["MambaForCausalLM"]))

    def quantization_config(**changes):  # GPTQ's and AWQ's config.json edited
        def prepare(model, out):
            def edit(c):
                for key, value in changes.items():
                    if value is None:
                        c["quantization_config"].pop(key)
                    else:
                        c["quantization_config"][key] = value
            edit_json(os.path.join(model, "config.json"), edit)
        return prepare

    def no_quantization_config(model, out):
        edit_json(os.path.join(model, "config.json"), lambda c: c.pop("quantization_config"))

    def qweight_reshaped(model, out):  # [24, 128] of I32 read as [48, 64]: the same bytes
        edit_tensor(model, "model.safetensors", GPTQ_DOWN + ".qweight", lambda i: i.update(shape=[48, 64]))

    def g_idx_out_of_range(model, out):
        poke(model, GPTQ_DOWN + ".g_idx", 5, struct.pack("<i", 99))

    def g_idx_not_consecutive(model, out):  # desc_act false: input 0 is in group 0
        poke(model, GPTQ_DOWN + ".g_idx", 0, struct.pack("<i", 1))

    def nan_group_scale(model, out):
        poke(model, GPTQ_DOWN + ".scales", 2 * 128 + 7, b"\x00\x7e")  # fp16 NaN at [2, 7]

    def bad_capture(name):
        def prepare(model, out):
            import phase3_reference  # numpy + h5py: writes the defective copies of a good capture
            good = os.path.join(os.path.dirname(fixture_dir), "capture", "deepseek_v3.h5")
            phase3_reference.make_bad_captures(good, os.path.join(os.path.dirname(model), "captures"))
        return prepare

    def fifo_at(name):
        def prepare(model, out):
            path = os.path.join(model, name)
            if os.path.exists(path):
                os.remove(path)
            os.mkfifo(path)
        return prepare

    def shard_is_a_directory(model, out):
        shard = os.path.join(model, "model-00003-of-00004.safetensors")
        os.remove(shard)
        os.mkdir(shard)

    def shard_is_a_char_device(model, out):
        shard = os.path.join(model, "model-00003-of-00004.safetensors")
        os.remove(shard)
        try:
            os.mknod(shard, 0o644 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
        except PermissionError:
            return "skip: mknod needs root"

    def config_over_16mib(model, out):
        with open(os.path.join(model, "config.json"), "a") as f:
            f.write(" " * (16 * 2 ** 20 + 1))

    def capture_edit(name, dataset, edit):
        """A copy of the demo's committed capture with one dataset rewritten by edit(numpy, array)."""
        def prepare(model, out):
            import h5py
            import numpy
            good = os.path.join(os.path.dirname(fixture_dir), "capture", "kimi_k2_tiny.h5")
            path = os.path.join(os.path.dirname(model), "captures", name + ".h5")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copyfile(good, path)
            with h5py.File(path, "r+") as f:
                data = edit(numpy, f[dataset][()])
                del f[dataset]
                f.create_dataset(dataset, data=data)
        return prepare

    def duplicate_id(np, a):
        a[5] = [3, 3]
        return a

    def id_beyond_int64(np, a):
        a = a.astype(np.uint64)
        a[7, 1] = 2 ** 64 - 1
        return a

    def beyond_float32(np, a):
        a = a.astype(np.float64)
        a[2, 7] = 1e300
        return a

    def out_not_empty(model, out):
        os.makedirs(out)
        open(os.path.join(out, "keep.txt"), "w").write("mine")

    def out_is_file(model, out):
        open(out, "w").write("a file")

    return [
        ("truncated_shard", BAD_INPUT, ["model-00003-of-00004.safetensors", "truncated"], truncate, []),
        ("header_length_beyond_file", BAD_INPUT, ["model-00002-of-00004.safetensors", "runs past the end"], long_header, []),
        ("header_100MB_plus_1", BAD_INPUT, ["model-00002-of-00004.safetensors", "exceeds the limit"], huge_header, []),
        ("nan_weight", BAD_INPUT, ["model-00004-of-00004.safetensors", EXPERT, "is NaN"], nan_weight, []),
        ("nan_scale", BAD_INPUT, [EXPERT + "_scale_inv", "is NaN"], nan_scale, []),
        ("missing_shard", BAD_INPUT, ["model-00004-of-00004.safetensors", "does not exist"], missing_shard, []),
        ("shape_disagrees_with_config", BAD_INPUT, ["model.layers.1.mlp.experts.", "disagrees with config.json"], shape_vs_config, []),
        ("missing_weight_scale_inv", BAD_INPUT, [EXPERT, "no scale tensor", "_scale_inv", "block scaling"], missing_scale, []),
        ("invalid_config_json", BAD_INPUT, ["config.json", "not valid JSON"], bad_config_json, []),
        ("duplicate_tensor_name", BAD_INPUT, ["model-00001-of-00004.safetensors", "duplicate name"], duplicate_name, []),
        ("unknown_dtype", BAD_INPUT, ["model-00004-of-00004.safetensors", "unknown dtype 'F8_E9M9'"], unknown_dtype, []),
        ("deeply_nested_header", BAD_INPUT, ["model-00002-of-00004.safetensors", "nested deeper than 64"], deep_nesting, []),
        ("overlapping_offsets", BAD_INPUT, ["model-00003-of-00004.safetensors", "overlap tensor"], overlapping_offsets, []),
        ("invalid_utf8_header", BAD_INPUT, ["model-00002-of-00004.safetensors", "not valid UTF-8"], invalid_utf8, []),
        ("gapped_offsets", BAD_INPUT, ["model-00003-of-00004.safetensors", "leave a gap"], gapped_offsets, []),
        ("offsets_out_of_range", BAD_INPUT, ["model-00004-of-00004.safetensors", "run past the"], offsets_out_of_range, []),
        ("element_count_overflow", BAD_INPUT, ["model-00004-of-00004.safetensors", EXPERT, "overflows"], count_overflow, []),
        ("scale_of_wrong_shape", BAD_INPUT, [EXPERT + "_scale_inv", "scale shape [4, 1] does not fit"], scale_wrong_shape, []),
        ("inf_scale", BAD_INPUT, [EXPERT + "_scale_inv", "is +Inf"], inf_scale, []),
        ("inf_weight", BAD_INPUT, ["model.safetensors", MIXED_EXPERT, "is -Inf"], inf_weight, [], "steep_mixed"),
        ("shard_name_outside_model", BAD_INPUT, ["model.safetensors.index.json", EXPERT, "not a plain file name"],
         shard_name_outside, []),
        ("shard_symlink_outside_model", BAD_INPUT, ["model-00004-of-00004.safetensors", "leads outside the model directory"],
         shard_symlink_outside, []),
        ("output_file_is_a_symlink", USAGE, ["vindex.h5 is a symbolic link"], output_file_symlink, ["--overwrite"]),
        ("mxfp4_scale_255", BAD_INPUT, ["model.safetensors", MXFP4_SCALES, "is 255 (NaN)"], mxfp4_nan_scale, [],
         "hf/gpt_oss_mxfp4"),
        ("fused_experts_shape_vs_config", BAD_INPUT, ["model.safetensors", LLAMA4_FUSED, "but config.json gives"],
         fused_shape_vs_config, [], "hf/llama4"),
        ("unknown_architecture", BAD_INPUT, ["config.json", "unknown architecture: model_type 'mamba'", "Qwen3-MoE",
                                             "GPT-OSS", "BERT-style"], unknown_architecture, [], "hf/olmoe"),
        ("projection_the_mlp_lacks", USAGE, ["--projections", "has no gate_proj"], None, ["--projections", "gate,down"],
         "hf/bert_dense"),
        # GPTQ and AWQ (tests/fixtures/postquant): quantization_config and the packed tensors.
        ("gptq_3_bits", BAD_INPUT, ["config.json", "quantization_config.bits is 3", "read with 4 bits", "awq (bits 4"],
         quantization_config(bits=3), [], "postquant/gptq_act_order"),
        ("gptq_without_group_size", BAD_INPUT, ["config.json", "quantization_config.group_size is missing", "gptq ("],
         quantization_config(group_size=None), [], "postquant/gptq_asym"),
        ("gptq_checkpoint_format_marlin", BAD_INPUT, ["config.json", "quantization_config.checkpoint_format is marlin"],
         quantization_config(checkpoint_format="marlin"), [], "postquant/gptq_asym"),
        ("awq_version_gemv", BAD_INPUT, ["config.json", "quantization_config.version is gemv", "GEMM packing"],
         quantization_config(version="gemv"), [], "postquant/awq_gemm"),
        ("awq_without_zero_point", BAD_INPUT, ["config.json", "quantization_config.zero_point is false"],
         quantization_config(zero_point=False), [], "postquant/awq_gemm"),
        ("qweight_without_quantization_config", BAD_INPUT, ["model.safetensors", "mlp.gate_proj.qweight",
                                                            "declares no quantization"],
         no_quantization_config, [], "postquant/gptq_v2"),
        ("gptq_qweight_shape", BAD_INPUT, ["model.safetensors", GPTQ_DOWN + ".qweight", "shape [48, 64] does not fit",
                                           "qweight is [24, 128]"], qweight_reshaped, [], "postquant/gptq_act_order"),
        ("awq_group_size_vs_scales", BAD_INPUT, ["model.safetensors", "mlp.gate_proj.qzeros", "does not fit",
                                                 "group_size 64"], quantization_config(group_size=64), [],
         "postquant/awq_gemm"),
        ("gptq_g_idx_out_of_range", BAD_INPUT, ["model.safetensors", GPTQ_DOWN + ".g_idx", "g_idx [5] is 99",
                                                "outside the 6 groups"], g_idx_out_of_range, [], "postquant/gptq_act_order"),
        ("gptq_g_idx_without_desc_act", BAD_INPUT, ["model.safetensors", GPTQ_DOWN + ".g_idx", "g_idx [0] is 1",
                                                    "desc_act is false"], g_idx_not_consecutive, [], "postquant/gptq_asym"),
        ("gptq_nan_scale", BAD_INPUT, ["model.safetensors", GPTQ_DOWN + ".scales", "scale [2, 7] is NaN"],
         nan_group_scale, [], "postquant/gptq_asym"),
        ("phase_3_without_activations", USAGE, ["--phases 3 needs --activations"], None, ["--phases", "1,3"]),
        *[(f"capture_{name}", BAD_INPUT, [f"captures/{name}.h5", *needles], bad_capture(name),
           ["--phases", "1,3", "--activations", "{case}/captures/" + name + ".h5"], "hf/deepseek_v3")
          for name, needles in (("missing_layer", ["/layers/layer_001/mlp_input", "is missing"]),
                                ("wrong_hidden_size", ["/layers/layer_000/mlp_input", "hidden size 64"]),
                                ("nan_mlp_input", ["/layers/layer_000/mlp_input", "[3, 5] is NaN"]),
                                ("token_count_mismatch", ["/output/top_probs", "has shape [11, 16]"]))],
        # Special files where files belong: refused at once (exit 3), never opened blocking.
        *[(f"{label}_is_a_fifo", BAD_INPUT, [name, "FIFO"], fifo_at(name), [])
          for label, name in (("config_json", "config.json"), ("index", "model.safetensors.index.json"),
                              ("shard", "model-00003-of-00004.safetensors"))],
        ("capture_is_a_fifo", BAD_INPUT, ["capture.h5", "FIFO"], fifo_at("capture.h5"),
         ["--phases", "1,3", "--activations", "{case}/model/capture.h5"], "hf/deepseek_v3"),
        ("shard_is_a_directory", BAD_INPUT, ["model-00003-of-00004.safetensors", "is a directory"], shard_is_a_directory, []),
        ("shard_is_a_character_device", BAD_INPUT, ["model-00003-of-00004.safetensors", "character device"],
         shard_is_a_char_device, []),
        ("config_json_over_16MiB", BAD_INPUT, ["config.json", "more than the 16777216 allowed"], config_over_16mib, []),

        # Capture dtypes and ids (docs/phase3.md): every dataset's HDF5 class is checked when the file
        # is opened, ids and values when the rank reading them finds them; nothing is truncated.
        *[(f"capture_{name}", BAD_INPUT, [f"captures/{name}.h5", dataset, *needles], capture_edit(name, dataset, edit),
           ["--phases", "1,3", "--activations", "{case}/captures/" + name + ".h5"])
          for name, dataset, edit, needles in (
              ("duplicate_expert_ids", "/layers/layer_001/selected_experts", duplicate_id,
               ["token 5 lists expert 3 more than once", "[3, 3]"]),
              ("float_expert_ids", "/layers/layer_002/selected_experts", lambda np, a: a.astype(np.float32) + 0.25,
               ["holds 4-byte floats, expected integers"]),
              ("expert_id_beyond_int64", "/layers/layer_003/selected_experts", id_beyond_int64,
               ["[7, 1] = 18446744073709551615 is past int64's range"]),
              ("int8_mlp_input", "/layers/layer_002/mlp_input",
               lambda np, a: np.clip(np.round(a * 10), -128, 127).astype(np.int8),
               ["holds 1-byte signed integers, expected floating point"]),
              ("mlp_input_beyond_float32", "/layers/layer_000/mlp_input", beyond_float32,
               ["[2, 7] = 1e+300 is outside float32's range"]),
              ("float_token_ids", "/tokens/token_ids", lambda np, a: a.astype(np.float32), ["expected integers"]),
              ("float_prompt_index", "/tokens/prompt_index", lambda np, a: a.astype(np.float64), ["expected integers"]),
              ("float_position", "/tokens/position", lambda np, a: a.astype(np.float32), ["expected integers"]),
              ("integer_router_logits", "/layers/layer_001/router_logits", lambda np, a: a.astype(np.int32),
               ["expected floating point"]),
              ("integer_routing_weights", "/layers/layer_003/routing_weights", lambda np, a: a.astype(np.int16),
               ["expected floating point"]),
              ("integer_top_probs", "/output/top_probs", lambda np, a: (a * 1000).astype(np.int32),
               ["expected floating point"]),
              ("float_top_token_ids", "/output/top_token_ids", lambda np, a: a.astype(np.float64),
               ["expected integers"]))],
        ("layer_out_of_range", USAGE, ["--layers", "layer 7 does not exist"], None, ["--layers", "1,7"]),
        ("k_zero", USAGE, ["--k"], None, ["--k", "0"]),
        ("unknown_option", USAGE, ["--frobnicate"], None, ["--frobnicate"]),
        ("output_dir_not_empty", USAGE, ["not empty", "--overwrite"], out_not_empty, []),
        ("output_path_is_a_file", USAGE, ["is not a directory"], out_is_file, []),
    ]


def run_case(args, case, more_args=()):
    """Runs one case of cases() in args.work/NAME under mpiexec -n 2 (with `more_args`, e.g. a
    backend) and records its problems in `failures`."""
    name, want_code, want_parts, prepare, extra, *fixture = case
    model = os.path.join(args.work, name, "model")
    out = os.path.join(args.work, name, "out")
    shutil.copytree(os.path.join(os.path.dirname(args.fixture), fixture[0]) if fixture else args.fixture, model)
    before = None
    skipped = prepare(model, out) if prepare else None
    if skipped:  # a prepare step this machine cannot do says why
        print(f"skip   {name:32} {skipped}")
        return
    if os.path.isdir(out):
        before = sorted(os.listdir(out))
    start = time.monotonic()
    extra = [e.replace("{case}", os.path.dirname(model)) for e in extra]
    code, stdout, stderr = mpi_runner.run(args, 2, ["--model", model, "--out", out] + extra + list(more_args), timeout=120)
    seconds = time.monotonic() - start
    errors = [l for l in stderr.splitlines() if l.startswith("vindex_mpi: error")]
    problems = []
    if code != want_code:
        problems.append(f"exit code {code}, expected {want_code}")
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines, expected exactly one")
    missing = [p for p in want_parts if not any(p in e for e in errors)]
    if missing:
        problems.append(f"message lacks {missing}")
    if os.path.isdir(out) and sorted(os.listdir(out)) != (before or []):
        problems.append(f"output directory changed: {sorted(os.listdir(out))}")
    if "fatal" in stderr or "MPI_ABORT" in stderr:
        problems.append("the job was aborted instead of ending cleanly")
    if code == BAD_INPUT and errors and f" on {socket.gethostname()})" not in errors[0]:
        problems.append("the message does not name the rank's host")
    if "\x1b" in stderr:
        problems.append("a raw escape character reached the terminal")
    status = "ok" if not problems else "FAILED"
    print(f"{status:6} {name:32} exit {code} in {seconds:4.1f} s: {errors[0] if errors else stderr.strip()[-200:]}")
    if problems:
        failures.append(f"{name}: {'; '.join(problems)}\n    stderr: {stderr.strip()[-600:]}")


def main():
    parser = argparse.ArgumentParser()
    mpi_runner.add_arguments(parser)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    for case in cases(args.fixture):
        run_case(args, case)
    # `inspect` reads the same files, without MPI: a FIFO in place of config.json must not block it.
    model = os.path.join(args.work, "inspect_fifo", "model")
    shutil.copytree(args.fixture, model)
    os.remove(os.path.join(model, "config.json"))
    os.mkfifo(os.path.join(model, "config.json"))
    try:
        p = subprocess.run([args.binary, "inspect", "--model", model], capture_output=True, text=True, timeout=30)
        ok = p.returncode == BAD_INPUT and "config.json" in p.stderr and "FIFO" in p.stderr
        print(f"{'ok' if ok else 'FAILED':6} {'inspect_config_json_is_a_fifo':32} exit {p.returncode}: {p.stderr.strip()[-200:]}")
        if not ok:
            failures.append(f"inspect with a FIFO config.json: exit {p.returncode}: {p.stderr[-400:]}")
    except subprocess.TimeoutExpired:
        failures.append("inspect with a FIFO config.json: HANG (no exit within 30 s)")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
