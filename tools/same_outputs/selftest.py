#!/usr/bin/env python3
"""Self-test of compare_outputs.py: selftest.py OUT_ROOT_1 OUT_ROOT_2 (two make_outputs.sh runs of one binary).
Checks that the two compare identical, then mutates copies of one case and checks each mutation is
reported (or, for an ignored provenance key, not reported)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "compare_outputs.py")
failures = 0


def compare(a, b, *extra):
    p = subprocess.run([sys.executable, TOOL, *extra, a, b], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def refresh_manifest(d):
    """Rewrites d's manifest sizes and hashes (so that only the mutation itself differs)."""
    mp = os.path.join(d, "vindex-manifest.json")
    m = json.load(open(mp))
    for f in m["files"]:
        data = open(os.path.join(d, f["name"]), "rb").read()
        f["bytes"], f["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    json.dump(m, open(mp, "w"))


def expect(label, rc_expected, out, needle=None):
    global failures
    ok = rc_expected == rc_expected_of(out) and (needle is None or needle in out)
    print(f"{'ok  ' if ok else 'FAIL'} {label}: exit {rc_expected_of(out)}" + ("" if ok else f"\n{out}"))
    for line in out.splitlines()[:3]:
        print(f"       | {line}")
    failures += not ok


def rc_expected_of(out):
    return 0 if "IDENTICAL" in out else 1


def sub_json_text(path, old, new, count=1):
    s = open(path).read()
    assert old in s, (path, old)
    open(path, "w").write(s.replace(old, new, count))


def main():
    r1, r2 = sys.argv[1], sys.argv[2]
    rc, out = compare(r1, r2)
    expect("two runs of one binary, all cases", 0, out)
    print("     ", out.strip().splitlines()[-1])
    case = "demo_np2_p12_allproj"
    work = tempfile.mkdtemp(prefix="compare-selftest-")
    base = os.path.join(r2, case)

    def mutated(label, mutate, expect_rc, needle=None, fix_manifest=True, extra=()):
        d = os.path.join(work, label.replace(" ", "_"))
        shutil.copytree(base, d)
        mutate(d)
        if fix_manifest:
            refresh_manifest(d)
        rc, out = compare(os.path.join(r1, case), d, *extra)
        expect(label, expect_rc, out, needle)

    def h5_element(d):
        with h5py.File(os.path.join(d, "vindex.h5"), "r+") as h:
            ds = h["phase1/layer_002/down_proj/singular_values"]
            v = ds[3, 7]
            ds[3, 7] = np.nextafter(v, np.float32(np.inf))   # one ulp
    mutated("one singular value changed by 1 ulp (h5py)", h5_element, 1, "singular_values")

    def h5_negzero(d):
        with h5py.File(os.path.join(d, "vindex.h5"), "r+") as h:
            ds = h["phase1/layer_000/down_proj/var_at_k"]
            a = ds[...]
            a[...] = a  # no-op write; then flip a sign bit of an alpha in another layer
            h["phase1/layer_001/down_proj/alpha"][0] = -h["phase1/layer_001/down_proj/alpha"][0]
    mutated("sign of one dataset element", h5_negzero, 1, "alpha")

    def h5_dtype(d):
        with h5py.File(os.path.join(d, "vindex.h5"), "r+") as h:
            name = "phase1/layer_001/down_proj/expert_ids"
            a = h[name][...]
            del h[name]
            h.create_dataset(name, data=a.astype(np.int64))   # same values, wider type
    mutated("dataset dtype int32 -> int64, same values", h5_dtype, 1, "dtype")

    def h5_attr(d):
        with h5py.File(os.path.join(d, "vindex.h5"), "r+") as h:
            h["phase1/layer_001/down_proj"].attrs["role"] = "shared"
    mutated("HDF5 attribute value", h5_attr, 1, "attribute 'role'")

    def h5_extra(d):
        with h5py.File(os.path.join(d, "vindex.h5"), "r+") as h:
            h.create_group("phase1/extra")
    mutated("extra HDF5 group", h5_extra, 1, "member 'extra' only in B")

    def json_value(d):
        sub_json_text(os.path.join(d, "phase1_moe_svd.json"), '"median_var64": 0.35698290829320506',
                      '"median_var64": 0.35698290829320511')
    mutated("one JSON float (last digits)", json_value, 1, "median_var64")

    def json_type(d):
        sub_json_text(os.path.join(d, "phase1_moe_svd.json"), '"n_matrices": 1,', '"n_matrices": 1.0,')
    mutated("JSON int -> float, same value", json_type, 1, "int 1 in A, float 1.0 in B")

    def json_missing_file(d):
        os.remove(os.path.join(d, "phase2_router_svd.json"))
    mutated("a JSON file missing", json_missing_file, 1, "phase2_router_svd.json: only in A", fix_manifest=False)

    def prov_host(d):
        sub_json_text(os.path.join(d, "moe_config.json"), '"run_id"', '"run_id"')  # untouched
        p = os.path.join(d, "phase1_moe_svd_agg.json")
        s = open(p).read()
        open(p, "w").write(re.sub(r'"host_rank0": "[^"]*"', '"host_rank0": "otherhost"', s))
    mutated("provenance host_rank0 (compared)", prov_host, 1, "host_rank0")

    def prov_ignored(d):  # what differs between two builds and two runs: must not be reported
        for name in ("phase1_moe_svd.json", "phase1_moe_svd_agg.json", "phase2_router_svd.json"):
            p = os.path.join(d, name)
            s = open(p).read()
            s = re.sub(r'"git_commit": "[0-9a-f]+"', '"git_commit": "0123456789ab"', s)
            s = re.sub(r'"elapsed_seconds": [0-9.e+-]+', '"elapsed_seconds": 123.25', s)
            s = re.sub(r'"started_utc": "[^"]*"', '"started_utc": "1999-01-01T00:00:00Z"', s)
            s = re.sub(r'"command_line": "[^ "]*', '"command_line": "/some/other/build/src/vindex_mpi', s)
            open(p, "w").write(s)
        with h5py.File(os.path.join(d, "vindex.h5"), "r+") as h:
            prov = json.loads(h.attrs["provenance"])
            prov["git_commit"] = prov["run_identity"]["git_commit"] = "0123456789ab"
            prov["peak_rss_mib_max_rank"] = 999.0
            h.attrs["provenance"] = json.dumps(prov)
    mutated("ignored provenance keys changed (git_commit, times, RSS, binary path)", prov_ignored, 0)

    def prov_args(d):
        p = os.path.join(d, "phase1_moe_svd.json")
        sub_json_text(p, "--phases 1,2", "--phases 1,2 --threads 1")
    mutated("command_line arguments (compared)", prov_args, 1, "command_line")

    def manifest_unrefreshed(d):
        h5_attr(d)
    mutated("file changed after the run (manifest check)", manifest_unrefreshed, 1, "does not match the manifest",
            fix_manifest=False)

    # text outputs: dry-run and stdout table
    d = os.path.join(work, "root_text")
    os.makedirs(d)
    for sub in ("dry_run", "_logs"):
        shutil.copytree(os.path.join(r2, sub), os.path.join(d, sub))
    sub_json_text(os.path.join(d, "dry_run", "demo_np2_p12_allproj.txt"), "41", "42")
    p = os.path.join(d, "_logs", "demo_np1.stdout")
    s = open(p).read()
    open(p, "w").write(s.replace("0.3571", "0.3572", 1))
    rc, out = compare(os.path.join(r1, "dry_run"), os.path.join(d, "dry_run"))
    expect("dry-run text changed", 1, out, "demo_np2_p12_allproj.txt: line")
    rc, out = compare(os.path.join(r1, "_logs"), os.path.join(d, "_logs"))
    expect("stdout table changed", 1, out, "demo_np1.stdout: line")

    # pair mode: two cases at once
    rc, out = compare(os.path.join(r1, "hf_olmoe"), os.path.join(r1, "hf_mixtral"))
    expect("different cases (olmoe vs mixtral) are different", 1, out)
    p = subprocess.run([sys.executable, TOOL, os.path.join(r1, "hf_olmoe"), os.path.join(r1, "steep_np1"), "--",
                        os.path.join(r2, "hf_olmoe"), os.path.join(r2, "steep_np1")], capture_output=True, text=True)
    expect("pair mode, two identical pairs", 0, p.stdout)

    shutil.rmtree(work)
    print("self-test:", "PASSED" if failures == 0 else f"{failures} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
