#!/usr/bin/env python3
"""No lost work: a run under mpiexec -n 2 whose rank 1 is killed (SIGKILL) mid-way must end
within seconds with a non-zero exit and a message naming the rank, leave nothing under a final
file name, and keep its journal; `--resume` (with 3 ranks) must then compute only what is missing
and produce files equal, value for value, to an uninterrupted run's. Also: a journal of other
options is refused, --resume and --overwrite together are refused, --overwrite discards a journal,
and --resume on an empty directory starts afresh. The journal's content is checked before reuse:
records whose checksum holds but whose results cannot be right (2049 singular values for a
2048-row matrix, NaN or ascending values, var@k of 7.5) are refused, reported and recomputed. The
model is checked too: a journal of another checkpoint with identical headers (one weight byte
differs) is refused, and --verify-all re-reads every reused matrix and checks its weight digest.

  kill_and_resume.py --mpiexec M --np-flag -n --binary B --generator tools/make_large_fixture.py
                     --checker tests/integration/check_outputs.py --work DIR
  kill_and_resume.py ... --model CHECKPOINT [--run-args "--projections down,gate,up"]

With --model, the kill, the lock, the refusals and the resume run on that checkpoint (the real GGUF
model, which is not copied or altered) with --run-args; the checks that alter a model or a journal
stay with the generated one.
"""
import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import mpi_runner
from checks import check, finish

FINAL = ("vindex.h5", "phase1_moe_svd.json", "phase1_moe_svd_agg.json", "moe_config.json", "vindex-manifest.json")
JOURNAL = ".vindex-journal"
N_SCALAR_STATS = 12  # vindex/numerics/stats.hpp, kScalarStats


def decode_results(payload):
    """A results record's payload (src/core/run/results.cpp, encoding version 4) as a list of dicts."""
    version, count = struct.unpack_from("<IQ", payload, 0)
    assert version == 4, version
    pos, out = 12, []
    for _ in range(count):
        r = {}
        r["layer"], r["role"], r["projection"], r["expert"], r["rows"], r["cols"], r["gram"], r["eigen"], r["digest"] = \
            struct.unpack_from("<iBBiQQBBQ", payload, pos)
        pos += struct.calcsize("<iBBiQQBBQ")
        n = struct.unpack_from("<Q", payload, pos)[0]
        r["sv"] = list(struct.unpack_from(f"<{n}f", payload, pos + 8))
        pos += 8 + 4 * n
        n = struct.unpack_from("<Q", payload, pos)[0]
        r["var"] = list(struct.unpack_from(f"<{n}d", payload, pos + 8))
        pos += 8 + 8 * n
        r["stats"] = list(struct.unpack_from(f"<{N_SCALAR_STATS}d", payload, pos))
        pos += 8 * N_SCALAR_STATS
        out.append(r)
    assert pos == len(payload)
    return out


def encode_results(results):
    out = struct.pack("<IQ", 4, len(results))
    for r in results:
        out += struct.pack("<iBBiQQBBQ", r["layer"], r["role"], r["projection"], r["expert"], r["rows"], r["cols"],
                           r["gram"], r["eigen"], r["digest"])
        out += struct.pack("<Q", len(r["sv"])) + struct.pack(f"<{len(r['sv'])}f", *r["sv"])
        out += struct.pack("<Q", len(r["var"])) + struct.pack(f"<{len(r['var'])}d", *r["var"])
        out += struct.pack(f"<{N_SCALAR_STATS}d", *r["stats"])
    return out


def tamper_journal(out_dir, edits):
    """Applies edits[i](result) to the i-th result of the journal's first results records and rewrites
    the records with valid checksums: damage the CRC cannot see. Returns how many results were edited."""
    d = os.path.join(out_dir, JOURNAL)
    path = os.path.join(d, sorted(os.listdir(d))[0])
    data = bytearray(open(path, "rb").read())
    pos, edited, rebuilt = 0, 0, b""
    while pos + 24 <= len(data):
        magic, kind, length, _crc = struct.unpack_from("<IIQI", data, pos)
        payload = bytes(data[pos + 24:pos + 24 + length])
        if kind == 2 and edited < len(edits):
            results = decode_results(payload)
            for r in results:
                if edited < len(edits):
                    edits[edited](r)
                    edited += 1
            payload = encode_results(results)
        rebuilt += struct.pack("<IIQII", magic, kind, len(payload), zlib.crc32(payload), 0) + payload
        pos += 24 + length
    open(path, "wb").write(rebuilt)
    return edited


def poke_model(model, offset):
    """Flips one bit of the first tensor of the first shard at `offset` into its data; headers stay."""
    shard = sorted(f for f in os.listdir(model) if f.endswith(".safetensors"))[0]
    path = os.path.join(model, shard)
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        first = min((v["data_offsets"][0], k) for k, v in header.items() if k != "__metadata__")
        f.seek(8 + n + first[0] + offset)
        value = f.read(1)[0]
        f.seek(8 + n + first[0] + offset)
        f.write(bytes([value ^ 0x01]))
        return first[1]


def journal_results_bytes(out_dir, rank):
    """Bytes in rank's journal file beyond its identity record (a results batch has landed)."""
    d = os.path.join(out_dir, JOURNAL)
    if not os.path.isdir(d):
        return 0
    for f in os.listdir(d):
        if f.endswith(f"-rank-{rank:05d}.vjl"):
            data = open(os.path.join(d, f), "rb").read()
            if len(data) >= 24:
                first = 24 + int.from_bytes(data[8:16], "little")
                return max(0, len(data) - first)
    return 0


def compare(checker, a, b, label):
    p = subprocess.run([sys.executable, checker, "identical", a, b], capture_output=True, text=True)
    check(p.returncode == 0, f"{label}: outputs differ from the uninterrupted run:\n{p.stdout}{p.stderr}")


def main():
    ap = argparse.ArgumentParser()
    mpi_runner.add_arguments(ap)
    ap.add_argument("--generator")
    ap.add_argument("--model", help="run on this checkpoint instead of a generated one (kill and resume only)")
    ap.add_argument("--run-args", default="", help="with --model: more options of every run, space-separated")
    ap.add_argument("--checker", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    if (args.generator is None) == (args.model is None):
        ap.error("exactly one of --generator and --model")
    mpi_runner.fresh_dir(args.work)
    os.makedirs(args.work)

    if args.model:
        model, more = os.path.abspath(args.model), args.run_args.split()
    else:
        # 8 MoE layers x 16 experts of 1024 x 1024 (F16): about 10 s of work for two ranks.
        model, more = os.path.join(args.work, "model"), []
        subprocess.run([sys.executable, args.generator, "--out", model, "--experts", "16", "--moe-layers", "8",
                        "--hidden", "1024", "--inter", "1024", "--projections", "down"], check=True,
                       stdout=subprocess.DEVNULL)
    clean = os.path.join(args.work, "clean")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", clean] + more)
    check(code == 0, f"clean run: exit {code}: {err[-2000:]}")

    # The killed run.
    out = os.path.join(args.work, "killed")
    cmd = mpi_runner.mpi_command(args, 2, ["--model", model, "--out", out, "--journal-seconds", "0.2"] + more)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    victim = None
    while time.monotonic() < deadline and proc.poll() is None:
        pids = mpi_runner.rank_pids(args.binary, out)
        if 1 in pids and journal_results_bytes(out, 1) > 0:
            victim = pids[1]
            break
        time.sleep(0.05)
    check(victim is not None, "rank 1 never journaled a batch (or the run ended first)")
    if victim is not None and not args.model:  # (a run of the real model is too short for this check)
        # While it runs, a second run into the same directory is refused: the first holds its lock.
        code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", out, "--resume"] + more)
        check(code == 2 and "another vindex_mpi run is using this directory" in err,
              f"a concurrent run into the same --out: exit {code}: {err[-800:]}")
    if victim is not None:
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            check(False, "HANG: the job did not end within 60 s of rank 1's death")
        ended = time.monotonic() - killed_at
        print(f"killed rank 1 (pid {victim}); the job ended {ended:.1f} s later with exit {proc.returncode}")
        check(proc.returncode != 0, "the killed job exited 0")
        check(ended < 15, f"the job took {ended:.1f} s to end after rank 1 died")
        check("rank 1" in stderr, f"no message names rank 1:\n{stderr[-2000:]}")
        left = sorted(os.listdir(out))
        check(not any(f in FINAL for f in left), f"final files after the kill: {left}")
        check(JOURNAL in left, f"the journal is gone after the kill: {left}")
    else:
        proc.kill()
        proc.communicate()

    # A journal of other options is refused (and left alone).
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", out, "--resume"] + more + ["--k", "32"])
    check(code == 2 and "different run" in err and "k:" in err, f"other options: exit {code}: {err[-1000:]}")
    # Neither a fresh run nor a contradictory one touches it.
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", out] + more)
    check(code == 2 and "--resume" in err, f"fresh run into a journaled directory: exit {code}: {err[-1000:]}")
    code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", out, "--resume", "--overwrite"] + more)
    check(code == 2 and "contradict" in err, f"--resume --overwrite: exit {code}: {err[-1000:]}")

    # Resume with three ranks: only the rest is computed; the files equal the clean run's.
    # (On a given checkpoint, --verify-all too: every reused matrix re-read and its digest checked.)
    verify = ["--verify-all"] if args.model else []
    code, stdout, err = mpi_runner.run(args, 3, ["--model", model, "--out", out, "--resume"] + more + verify)
    check(code == 0, f"resume: exit {code}: {err[-2000:]}")
    if args.model:
        print("\n".join(line for line in err.splitlines() if line.startswith("vindex_mpi: --verify-all")))
        check("every weight digest matches the model" in err, f"resume --verify-all: {err[-1500:]}")
    resumed = [line for line in err.splitlines() if line.startswith("vindex_mpi: resuming:")]
    check(len(resumed) == 1, f"resume: no 'resuming' line:\n{err[-2000:]}")
    if resumed:
        done, total = (int(x) for x in resumed[0].split("resuming: ")[1].split(" matrices")[0].split(" of "))
        print(resumed[0])
        check(0 < done < total, f"resume: {done} of {total} matrices already done; expected some but not all")
    compare(args.checker, out, clean, "resumed")
    check(set(FINAL) <= set(os.listdir(out)) and JOURNAL not in os.listdir(out),
          f"after the resume: {sorted(os.listdir(out))}")
    if args.model:
        return finish(f"kill and resume on {os.path.basename(model)}")

    # Rank 0 cannot write its outputs at the very end (a directory appears where vindex.h5 goes):
    # the job fails, the complete journal stays, and --resume computes nothing.
    blocked = os.path.join(args.work, "blocked")
    cmd = mpi_runner.mpi_command(args, 2, ["--model", model, "--out", blocked, "--layers", "0-3"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not os.path.isdir(os.path.join(blocked, JOURNAL)):
        time.sleep(0.02)
    os.makedirs(os.path.join(blocked, "vindex.h5"), exist_ok=True)
    _, stderr = proc.communicate(timeout=240)
    check(proc.returncode == 2 and "vindex.h5 exists and is not a file" in stderr,
          f"blocked output: exit {proc.returncode}: {stderr[-1000:]}")
    check(sorted(os.listdir(blocked)) == [JOURNAL, "vindex.h5"], f"blocked output left {sorted(os.listdir(blocked))}")
    os.rmdir(os.path.join(blocked, "vindex.h5"))

    # Its journal is complete. Another checkpoint with identical headers (one weight byte differs,
    # at the start of a tensor: inside the fingerprint's samples) cannot resume it.
    twin = os.path.join(args.work, "twin_model")
    shutil.copytree(model, twin)
    poke_model(twin, 0)
    code, _, err = mpi_runner.run(args, 1, ["--model", twin, "--out", blocked, "--layers", "0-3", "--resume"])
    check(code == 2 and "model_fingerprint" in err, f"resume with a twin model: exit {code}: {err[-1000:]}")
    # A weight changed between the samples is invisible to the fingerprint; --verify-all finds it.
    twin2 = os.path.join(args.work, "twin_model_2")
    shutil.copytree(model, twin2)
    changed = poke_model(twin2, 5000)
    kept = os.path.join(args.work, "blocked_copy")
    shutil.copytree(blocked, kept)
    code, _, err = mpi_runner.run(args, 2, ["--model", twin2, "--out", blocked, "--layers", "0-3", "--resume", "--verify-all"])
    check(code == 3 and changed in err and "weight digest" in err, f"--verify-all, changed weight: exit {code}: {err[-1000:]}")
    check(sorted(os.listdir(blocked)) == [JOURNAL], f"--verify-all refusal left {sorted(os.listdir(blocked))}")
    shutil.rmtree(blocked)
    shutil.copytree(kept, blocked)

    # Records whose checksums hold but whose results cannot be right are refused and recomputed.
    def more_values(r):
        r["sv"].append(0.0)
    def nan_value(r):
        r["sv"][3] = float("nan")
    def ascending(r):
        r["sv"].reverse()
    def var_out_of_range(r):
        r["var"][0] = 7.5
    edited = tamper_journal(blocked, [more_values, nan_value, ascending, var_out_of_range])
    check(edited == 4, f"only {edited} journal results could be edited")
    code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", blocked, "--layers", "0-3", "--resume", "--verify-all"])
    refused = [line for line in err.splitlines() if line.startswith("vindex_mpi: warning: journal")]
    check(code == 0 and "resuming: 45 of 49 matrices already done" in err and "4 refused entries recomputed" in err,
          f"resume of a tampered journal: exit {code}: {err[-1500:]}")
    check(len(refused) == 4 and all("recomputed" in line for line in refused), f"refusals reported: {refused}")
    check("--verify-all: 45 matrices" in err and "every weight digest matches" in err, f"--verify-all: {err[-1500:]}")
    clean_subset = os.path.join(args.work, "clean_0-3")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", clean_subset, "--layers", "0-3"])
    check(code == 0, f"clean run of layers 0-3: exit {code}: {err[-1000:]}")
    compare(args.checker, blocked, clean_subset, "resume of a tampered journal")

    # The same complete journal, untouched: --resume computes nothing.
    shutil.rmtree(blocked)
    shutil.copytree(kept, blocked)
    code, _, err = mpi_runner.run(args, 1, ["--model", model, "--out", blocked, "--layers", "0-3", "--resume"])
    check(code == 0 and "resuming: 49 of 49 matrices already done" in err and "0 to compute" in err,
          f"resume of a finished computation: exit {code}: {err[-1000:]}")

    # --overwrite discards an old journal; --resume on an empty directory starts afresh.
    os.makedirs(os.path.join(out, JOURNAL))
    open(os.path.join(out, JOURNAL, "run-0-rank-00000.vjl"), "wb").write(b"not a journal")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", out, "--overwrite", "--layers", "0-2"])
    check(code == 0 and JOURNAL not in os.listdir(out), f"--overwrite over a journal: exit {code}: {err[-1000:]}")
    fresh = os.path.join(args.work, "fresh_resume")
    code, _, err = mpi_runner.run(args, 2, ["--model", model, "--out", fresh, "--resume"])
    check(code == 0 and "resuming: 0 of 129" in err, f"--resume into an empty directory: exit {code}: {err[-1000:]}")
    compare(args.checker, fresh, clean, "--resume from nothing")

    return finish("kill and resume")


if __name__ == "__main__":
    sys.exit(main())
