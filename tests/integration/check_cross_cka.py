#!/usr/bin/env python3
"""`vindex_mpi cka` against a float64 numpy reference, and its refusals.

The reference is Kornblith et al.'s published CKA code (google-research/google-research,
representation_similarity/Demo.ipynb: gram_linear, center_gram(unbiased), cka(debiased)), written out
here in numpy float64 on the raw pooled vectors; vindex_mpi centres the columns first and computes
the Grams with BLAS, so agreement also checks that the U-centring ignores a shift of the features.

  check_cross_cka.py --mpiexec M --binary B --work DIR [--a A.h5 --b B.h5]
With --a/--b (the real models' pooled captures): A against B and A against itself on 2 ranks, every
table against the reference. Always: synthetic captures written here -- 1 rank against 2 ranks bit for
bit, independent random representations (the plain estimator is inflated, the debiased one is not),
and the refusals (different prompts, too few prompts, a phase-3 capture, NaN, a FIFO, a truncated file,
a non-empty --out, a bad --estimator), each with its exit code, a message naming the file, and no
output left.
"""
import argparse
import fractions
import hashlib
import json
import os
import sys

import h5py
import numpy as np

import mpi_runner

POOLINGS = ("mean", "last")
ESTIMATORS = ("debiased", "plain")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


# --- Kornblith et al.'s CKA, float64 -------------------------------------------------------------

def gram_linear(x):
    return x @ x.T


def center_gram(gram, unbiased=False):
    gram = gram.copy()
    if unbiased:
        n = gram.shape[0]
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = np.mean(gram, 0, dtype=np.float64)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def cka(gram_x, gram_y, debiased=False):
    gram_x = center_gram(gram_x, unbiased=debiased)
    gram_y = center_gram(gram_y, unbiased=debiased)
    scaled_hsic = gram_x.ravel().dot(gram_y.ravel())
    return scaled_hsic / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y))


def reference(path_a, path_b):
    """{(pooling, estimator): [R_a, R_b]} from the two files' stored values."""
    out = {}
    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        for p in POOLINGS:
            ga = [gram_linear(np.asarray(x, np.float64)) for x in fa["pooled"][p][()]]
            gb = [gram_linear(np.asarray(x, np.float64)) for x in fb["pooled"][p][()]]
            for e in ESTIMATORS:
                out[(p, e)] = np.array([[cka(x, y, e == "debiased") for y in gb] for x in ga])
    return out


# --- synthetic pooled captures ---------------------------------------------------------------------

def write_pooled(path, prompts, mean, last, model="synthetic", n_tokens=None):
    """A vindex-pooled-capture as capture.py --pooled writes it."""
    r, p, h = mean.shape
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "vindex-pooled-capture", "format_version": "1", "model": model,
                        "model_type": "synthetic", "engine": "check_cross_cka.py", "tokenization": "none",
                        "capture_dtype": "float64", "storage_dtype": "float64", "representation": "synthetic"})
        for key, value in (("num_hidden_layers", r - 1), ("n_representations", r), ("hidden_size", h),
                           ("n_prompts", p)):
            f.attrs[key] = np.int64(value)
        f["prompts/sha256"] = np.array([np.frombuffer(hashlib.sha256(t.encode()).digest(), np.uint8) for t in prompts])
        f["prompts/n_tokens"] = np.asarray(n_tokens if n_tokens is not None else [5] * p, np.int64)
        f["pooled/mean"] = mean
        f["pooled/last"] = last


def synthetic_pair(work, rng, p=40, h=96):
    """Two captures of one prompt set whose representations share a signal of varying strength."""
    prompts = [f"prompt number {i}" for i in range(p)]
    signal = rng.standard_normal((p, 16))
    def model(r, scale):
        mean = np.stack([signal @ rng.standard_normal((16, h)) * (k + 1) / r + rng.standard_normal((p, h)) * scale
                         for k in range(r)]) + 3.0  # a shift of every feature: both estimators must ignore it
        return mean, mean[::-1].copy() * 0.5 + rng.standard_normal((r, p, h))
    a = os.path.join(work, "syn_a.h5")
    b = os.path.join(work, "syn_b.h5")
    write_pooled(a, prompts, *model(4, 1.0), model="syn-a")
    write_pooled(b, prompts, *model(6, 2.0), model="syn-b")
    return a, b, prompts


# --- running and reading ---------------------------------------------------------------------------

def run_cka(args, np_, a, b, out, extra=()):
    mpi_runner.fresh_dir(out)
    return mpi_runner.run(args, np_, ["cka", a, b, "--out", out, *extra])


def read_outputs(out):
    with open(os.path.join(out, "cross_cka.json")) as f:
        j = json.load(f)
    tables = {}
    with h5py.File(os.path.join(out, "cross_cka.h5"), "r") as h:
        check(h.attrs["run_id"] == j["run_id"], f"{out}: cross_cka.h5 and cross_cka.json carry the same run id")
        for p in POOLINGS:
            for e in ESTIMATORS:
                m = np.array(j["poolings"][p][e]["matrix"], np.float64)
                check(np.array_equal(m, h[f"{p}/{e}/matrix"][()]), f"{out}: {p}/{e}: HDF5 and JSON hold the same matrix")
                tables[(p, e)] = m
    return j, tables


def check_against_reference(out, a, b, label, tol=1e-9):
    j, tables = read_outputs(out)
    ref = reference(a, b)
    ra, rb = ref[("mean", "plain")].shape
    check([m["layers"] for m in j["models"]] == [ra, rb], f"{label}: representation counts {ra}, {rb}")
    for key, want in ref.items():
        got = tables[key]
        err = np.max(np.abs(got - want))
        check(got.shape == want.shape and err <= tol, f"{label}: {key} within {tol} of the numpy reference (max {err:.2e})")
        t = j["poolings"][key[0]][key[1]]
        for i, m in enumerate(t["best_match_a"]):
            check(want[i, m["match"]] >= want[i].max() - tol and m["layer"] == i,
                  f"{label}: {key}: best match of a's layer {i}")
        for jj, m in enumerate(t["best_match_b"]):
            check(want[m["match"], jj] >= want[:, jj].max() - tol, f"{label}: {key}: best match of b's layer {jj}")
        for i, m in enumerate(t["matched_depth"]):
            d = i / (ra - 1)
            jb = int(fractions.Fraction(i * (rb - 1), ra - 1) + fractions.Fraction(1, 2))  # halves up, exactly
            check(m["layer_b"] == jb and abs(m["cka"] - want[i, jb]) <= tol and abs(m["depth"] - d) <= 1e-12,
                  f"{label}: {key}: matched depth of a's layer {i}")
    return j, tables


def expect_refusal(args, a, b, out, code, words, what, extra=()):
    got, _, err = run_cka(args, 2, a, b, out, extra)
    check(got == code and all(w in err for w in words), f"{what}: exit {code} naming {words} (got {got}: {err.strip()[-300:]})")
    check(not os.path.exists(out), f"{what}: --out {out} not created (the captures are checked first)")


def main():
    parser = argparse.ArgumentParser()
    mpi_runner.add_arguments(parser)
    parser.add_argument("--work", required=True)
    parser.add_argument("--a")
    parser.add_argument("--b")
    args = parser.parse_args()
    mpi_runner.fresh_dir(args.work)
    rng = np.random.default_rng(20261130)

    if args.a:
        out = os.path.join(args.work, "ab")
        code, stdout, err = run_cka(args, 2, args.a, args.b, out)
        check(code == 0, f"cka of the real models exits 0 (got {code}: {err[-400:]})")
        if code == 0:
            sys.stdout.write(stdout)
            check_against_reference(out, args.a, args.b, "real models")
        for name, path in (("a", args.a), ("b", args.b)):
            out = os.path.join(args.work, f"{name}{name}")
            code, _, err = run_cka(args, 2, path, path, out)
            check(code == 0, f"{name} against itself exits 0 (got {code}: {err[-400:]})")
            if code == 0:
                _, tables = check_against_reference(out, path, path, f"{name} against itself")
                for key, m in tables.items():
                    check(np.allclose(np.diag(m), 1.0, atol=1e-12, rtol=0), f"{name} against itself: {key}: diagonal is 1")
                    check(np.allclose(m, m.T, atol=1e-12, rtol=0), f"{name} against itself: {key}: symmetric")

    a, b, prompts = synthetic_pair(args.work, rng)
    one, two = os.path.join(args.work, "syn_np1"), os.path.join(args.work, "syn_np2")
    for np_, out in ((1, one), (2, two)):
        code, _, err = run_cka(args, np_, a, b, out)
        check(code == 0, f"synthetic on {np_} rank(s) exits 0 (got {code}: {err[-400:]})")
    if not failures:
        check_against_reference(two, a, b, "synthetic")
        tables_one, tables_two = read_outputs(one)[1], read_outputs(two)[1]
        check(tables_one.keys() == tables_two.keys() and
              all(np.array_equal(tables_one[k], tables_two[k]) for k in tables_one),
              "1 rank and 2 ranks give the same numbers, bit for bit")

    # Independent random representations of many dimensions: the plain estimator sees similarity
    # where there is none, the debiased one does not.
    p, h = 48, 400
    noise = [os.path.join(args.work, f"noise_{k}.h5") for k in range(2)]
    for path in noise:
        write_pooled(path, prompts[:1] + [f"noise prompt {i}" for i in range(1, p)],
                     rng.standard_normal((2, p, h)), rng.standard_normal((2, p, h)))
    out = os.path.join(args.work, "noise")
    code, _, err = run_cka(args, 2, noise[0], noise[1], out)
    check(code == 0, f"random pair exits 0 (got {code}: {err[-300:]})")
    if code == 0:
        _, tables = check_against_reference(out, noise[0], noise[1], "random pair")
        plain, debiased = tables[("mean", "plain")], tables[("mean", "debiased")]
        check(plain.min() > 0.5 and np.abs(debiased).max() < 0.1,
              f"independent random representations: plain CKA inflated ({plain.min():.3f}), debiased near 0 "
              f"({np.abs(debiased).max():.3f})")

    # Refusals.
    other = os.path.join(args.work, "other_prompts.h5")
    with h5py.File(b, "r") as f:
        mean, last = f["pooled/mean"][()], f["pooled/last"][()]
    changed = list(prompts)
    changed[7] = "a different prompt"
    write_pooled(other, changed, mean, last)
    expect_refusal(args, a, other, os.path.join(args.work, "r_prompts"), 3, ["other_prompts.h5", "prompt 7"],
                   "captures of different prompts")
    fewer = os.path.join(args.work, "fewer_prompts.h5")
    write_pooled(fewer, prompts[:39], mean[:, :39], last[:, :39])
    expect_refusal(args, a, fewer, os.path.join(args.work, "r_count"), 3, ["fewer_prompts.h5", "39 prompts"],
                   "captures of different prompt counts")
    tiny = [os.path.join(args.work, f"tiny_{k}.h5") for k in range(2)]
    for path in tiny:
        write_pooled(path, prompts[:3], rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 3, 8)))
    expect_refusal(args, tiny[0], tiny[1], os.path.join(args.work, "r_tiny"), 3, ["tiny_0.h5", "at least 4"],
                   "three prompts")
    bad = os.path.join(args.work, "nan.h5")
    mean_nan = mean.copy()
    mean_nan[2, 5, 1] = np.nan
    write_pooled(bad, prompts, mean_nan, last)
    expect_refusal(args, a, bad, os.path.join(args.work, "r_nan"), 3, ["nan.h5", "/pooled/mean", "prompt 5"],
                   "a NaN representation")
    phase3 = os.path.join(args.work, "phase3.h5")
    with h5py.File(phase3, "w") as f:
        f.attrs["format"] = "vindex-capture"
        f.attrs["format_version"] = "1"
    expect_refusal(args, a, phase3, os.path.join(args.work, "r_phase3"), 3, ["phase3.h5", "not a pooled capture"],
                   "a phase-3 capture")
    fifo = os.path.join(args.work, "fifo.h5")
    os.mkfifo(fifo)
    expect_refusal(args, a, fifo, os.path.join(args.work, "r_fifo"), 3, ["fifo.h5", "FIFO"], "a FIFO in place of a capture")
    truncated = os.path.join(args.work, "truncated.h5")
    with open(b, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(os.path.getsize(b) // 2))
    expect_refusal(args, a, truncated, os.path.join(args.work, "r_truncated"), 3, ["truncated.h5", "truncated"],
                   "a truncated capture")
    full = os.path.join(args.work, "full")
    os.makedirs(full, exist_ok=True)
    with open(os.path.join(full, "notes.txt"), "w") as f:
        f.write("keep\n")
    code, _, err = mpi_runner.run(args, 2, ["cka", a, b, "--out", full])
    check(code == 2 and "not empty" in err and sorted(os.listdir(full)) == ["notes.txt"],
          f"a non-empty --out: exit 2, nothing written (got {code}: {err.strip()[-200:]})")
    code, _, err = mpi_runner.run(args, 2, ["cka", a, b, "--out", os.path.join(args.work, "r_est"), "--estimator", "cosine"])
    check(code == 2 and "--estimator" in err, f"a bad --estimator: exit 2 (got {code}: {err.strip()[-200:]})")

    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("cross-model CKA: every table matches the float64 numpy reference; refusals as documented")


if __name__ == "__main__":
    main()
