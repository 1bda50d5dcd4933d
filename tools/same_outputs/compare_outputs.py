#!/usr/bin/env python3
"""Compares vindex_mpi outputs of two builds (or two runs): every HDF5 group, dataset (dtype, shape,
storage layout, values bit for bit) and attribute, every JSON value (recursively, with its type),
and every file's presence -- ignoring only what differs between two runs of one binary, or between
two builds of two commits (IGNORED below, each with its reason).

  compare_outputs.py A B                        two output directories, or two trees of them (e.g. two
                                                OUT_ROOTs of make_outputs.sh): every file, recursively
  compare_outputs.py A1 A2 ... -- B1 B2 ...     pairs A1/B1, A2/B2, ...
  options: --path-map OLD=NEW   in A's strings (JSON, attributes, text), replace OLD by NEW first (e.g.
                                two fixture trees: --path-map /old/tests/fixtures=/new/tests/fixtures);
                                repeatable
           --strict-key-order   a JSON object whose keys come in another order is a difference (default:
                                a warning only; values are compared either way)
           --max N              print at most N differences (default 200)
           -q                   print only the summary line

Exit 0: identical. Exit 1: differences, listed one a line as `PATH: what`. Exit 2: bad usage.

Files by kind:
  *.h5                               HDF5, compared completely (see compare_h5)
  *.json                             JSON values (vindex-manifest.json: file names, order, `removed`;
                                     not sizes or hashes). Each directory holding a vindex-manifest.json
                                     is also checked on its own: every file it names has that size and
                                     SHA-256, and every file carries the manifest's run_id
  *.txt, *.stdout                    text, line by line, after normalise_text() (progress lines, run ids,
                                     durations and rates, the two roots' absolute paths masked)
  report/*, *.png, *.html, *.stderr, presence only (figures and page embed timestamps, provenance and
  anything else                      rendering details; stderr interleaves ranks and timings)

HDF5 internal timestamps (object header mtime/ctime) are not read: h5py's API does not expose them
through datasets or attributes, and nothing here calls H5Oget_info.
"""
import hashlib
import json
import math
import os
import re
import struct
import sys

try:
    import h5py
    import numpy as np
except ImportError:  # a pyenv/venv python3 on PATH often lacks h5py while Debian's has it
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
            and not os.environ.get("COMPARE_OUTPUTS_REEXEC"):
        os.environ["COMPARE_OUTPUTS_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("compare_outputs.py needs h5py and numpy (apt-get install python3-h5py, or pip install h5py)")

# ------------------------------------------------------------------------------------------------
# What is ignored, and why. Found by comparing two runs of one binary on the same inputs (make_outputs.sh
# twice): exactly the keys below differed, plus git_commit and the binary's path, which differ between
# two builds of two commits. Everything else -- model_dir, the capture's path, host names, ranks, threads,
# backend_detail, library versions, tool version, the fingerprint, run_identity's other fields -- is
# compared, because it is the same for the same machine, fixtures and command (use --path-map when the
# fixtures lie elsewhere for one side).
# ------------------------------------------------------------------------------------------------

# Keys ignored anywhere inside a provenance object: the JSON files' top-level "provenance", vindex.h5's
# root attribute "provenance" (JSON text), and the slices' provenance nested in a merge's
# provenance.merged_from[].provenance.
IGNORED_PROVENANCE_KEYS = {
    "run_id",                 # 16 random hex digits, new for every run, resume and merge (also merged_from[].run_id)
    "started_utc",            # wall-clock start of the run
    "elapsed_seconds",        # wall time of the run
    "peak_rss_mib_max_rank",  # peak resident memory, varies run to run
    "git_commit",             # the build's commit (provenance.git_commit and provenance.run_identity.git_commit)
}
# provenance...command_line: compared without its first word, the path of the binary that ran (differs
# between two build directories; merge writes the bare name "vindex_mpi"). The arguments must match.
COMMAND_LINE_KEY = "command_line"

# Top-level keys ignored in every JSON file, and root attributes ignored in every HDF5 file.
IGNORED_TOP_LEVEL_JSON_KEYS = {"run_id"}    # the run's id, the first key of every JSON output
IGNORED_H5_ROOT_ATTRIBUTES = {"run_id"}     # the same id as a root attribute of vindex.h5

# vindex-manifest.json: the run id, and each file's size and SHA-256 (they cover the provenance, hence the
# timestamps, of the files they describe). The names, their order, "removed", "format" and
# "format_version" are compared.
IGNORED_MANIFEST_PATHS = {"run_id", "files[].bytes", "files[].sha256"}

MANIFEST = "vindex-manifest.json"
PRESENCE_ONLY_EXT = (".png", ".html", ".stderr", ".svg", ".pdf")

# ------------------------------------------------------------------------------------------------

diffs = []
warnings = []
path_map = []   # (old, new) replacements applied to A's strings


def diff(where, what):
    diffs.append(f"{where}: {what}")


def short(v, n=160):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def map_str(s):
    for old, new in path_map:
        s = s.replace(old, new)
    return s


# ------------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------------

def load_json(path):
    def pairs(kv):
        keys = [k for k, _ in kv]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            warnings.append(f"{path}: duplicate JSON keys {dup}")
        d = dict(kv)
        d["\0order"] = keys   # the key order, compared separately
        return d
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"), object_pairs_hook=pairs)


def pattern(path):
    """('files', 3, 'bytes') -> 'files[].bytes'"""
    out = ""
    for p in path:
        out += "[]" if isinstance(p, int) else ("." + p if out else p)
    return out


def fmt_path(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." + p if out else p)
    return out or "(root)"


def same_float(a, b):
    return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))


def ignored(path, kind):
    """kind: 'json' (a JSON output), 'manifest', 'provenance' (a provenance object's own tree)"""
    if kind == "manifest" and pattern(path) in IGNORED_MANIFEST_PATHS:
        return True
    if kind in ("json", "manifest") and len(path) == 1 and path[0] in IGNORED_TOP_LEVEL_JSON_KEYS:
        return True
    in_provenance = kind == "provenance" or "provenance" in path[:-1]
    if in_provenance and path and isinstance(path[-1], str) and path[-1] in IGNORED_PROVENANCE_KEYS:
        return True
    return False


def is_command_line(path, kind):
    in_provenance = kind == "provenance" or "provenance" in path[:-1]
    return in_provenance and path and path[-1] == COMMAND_LINE_KEY


def compare_json_values(a, b, where, path, kind, strict_order):
    if ignored(path, kind):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        oa, ob = a.get("\0order", list(a)), b.get("\0order", list(b))
        ka, kb = set(oa), set(ob)
        for k in oa:
            if k not in kb and not ignored(path + [k], kind):
                diff(where, f"{fmt_path(path + [k])} only in A (= {short(strip_order(a[k]))})")
        for k in ob:
            if k not in ka and not ignored(path + [k], kind):
                diff(where, f"{fmt_path(path + [k])} only in B (= {short(strip_order(b[k]))})")
        common_a = [k for k in oa if k in kb]
        common_b = [k for k in ob if k in ka]
        if common_a != common_b:
            msg = f"{fmt_path(path)}: key order differs: A {common_a} B {common_b}"
            (diff if strict_order else lambda w, m: warnings.append(f"{w}: {m}"))(where, msg)
        for k in common_a:
            compare_json_values(a[k], b[k], where, path + [k], kind, strict_order)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diff(where, f"{fmt_path(path)}: length {len(a)} in A, {len(b)} in B")
        for i, (x, y) in enumerate(zip(a, b)):
            compare_json_values(x, y, where, path + [i], kind, strict_order)
        return
    if type(a) is not type(b):   # bool vs int, int vs float, null vs number are differences
        diff(where, f"{fmt_path(path)}: {type(a).__name__} {short(a)} in A, {type(b).__name__} {short(b)} in B")
        return
    if isinstance(a, float):
        if not same_float(a, b):
            diff(where, f"{fmt_path(path)}: {a!r} in A, {b!r} in B")
        return
    if isinstance(a, str):
        a = map_str(a)
        if is_command_line(path, kind):
            a, b = a.split(" ", 1)[1] if " " in a else "", b.split(" ", 1)[1] if " " in b else ""
        # a string that holds JSON (none known in JSON files; kept general) is compared as values
    if a != b:
        diff(where, f"{fmt_path(path)}: {short(a)} in A, {short(b)} in B")


def strip_order(v):
    if isinstance(v, dict):
        return {k: strip_order(x) for k, x in v.items() if k != "\0order"}
    if isinstance(v, list):
        return [strip_order(x) for x in v]
    return v


def compare_json(fa, fb, where, strict_order):
    try:
        a = load_json(fa)
    except (ValueError, UnicodeDecodeError) as e:
        diff(where, f"A is not valid JSON: {e}")
        return
    try:
        b = load_json(fb)
    except (ValueError, UnicodeDecodeError) as e:
        diff(where, f"B is not valid JSON: {e}")
        return
    kind = "manifest" if os.path.basename(fa) == MANIFEST else "json"
    compare_json_values(a, b, where, [], kind, strict_order)


# ------------------------------------------------------------------------------------------------
# HDF5
# ------------------------------------------------------------------------------------------------

def dtype_desc(dt):
    s = h5py.check_string_dtype(dt)
    if s is not None:
        return f"string({s.encoding}, {'variable' if s.length is None else s.length})"
    v = h5py.check_vlen_dtype(dt)
    if v is not None:
        return f"vlen({dtype_desc(v)})"
    if dt.names:
        return "compound(" + ", ".join(f"{n}: {dtype_desc(dt.fields[n][0])}" for n in dt.names) + ")"
    return dt.str + (f" {dt.shape}" if dt.shape else "")


def as_python(v):
    """An h5py value (str, bytes, numpy scalar or array, possibly of objects) as comparable Python."""
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject or v.dtype.names:
            return [as_python(x) for x in v.tolist()] if v.dtype.hasobject else v.tolist()
        return ("ndarray", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, np.generic):
        return ("scalar", v.dtype.str, v.tobytes())
    if isinstance(v, bytes):
        return v
    if isinstance(v, (list, tuple)):
        return [as_python(x) for x in v]
    return v


def first_differences(a, b, limit=5):
    """Indices and values of the first elements of two same-shaped arrays that differ bitwise."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.hasobject or a.dtype.names:
        fa, fb = a.reshape(-1).tolist(), b.reshape(-1).tolist()
        idx = [i for i, (x, y) in enumerate(zip(fa, fb)) if x != y]
        n = len(idx)
        shown = [(np.unravel_index(i, a.shape) if a.shape else (), fa[i], fb[i]) for i in idx[:limit]]
        return n, shown
    ua = a.reshape(-1).view(np.uint8).reshape(a.size, -1) if a.size else a.reshape(-1)
    ub = b.reshape(-1).view(np.uint8).reshape(b.size, -1) if b.size else b.reshape(-1)
    mask = (ua != ub).any(axis=1) if a.size else np.zeros(0, bool)
    idx = np.flatnonzero(mask)
    shown = []
    for i in idx[:limit]:
        ix = tuple(int(x) for x in np.unravel_index(i, a.shape)) if a.shape else ()
        shown.append((ix, a.reshape(-1)[i].item(), b.reshape(-1)[i].item()))
    return len(idx), shown


def compare_array(a, b, where, what):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        diff(where, f"{what}: shape {a.shape} in A, {b.shape} in B")
        return
    if a.dtype.hasobject or a.dtype.names:
        pa, pb = as_python(a), as_python(b)
        if pa != pb:
            pa_m = [map_str(x) if isinstance(x, str) else x for x in pa] if isinstance(pa, list) else pa
            if pa_m != pb:
                n, shown = first_differences(a, b)
                diff(where, f"{what}: {n} element(s) differ, first {shown}")
        return
    if a.tobytes() != b.tobytes():
        n, shown = first_differences(a, b)
        diff(where, f"{what}: {n} of {a.size} element(s) differ bitwise; first (index, A, B): {shown}")


def attr_raw(obj, name):
    aid = obj.attrs.get_id(name)
    return aid.dtype, aid.shape


def looks_like_json(v):
    return isinstance(v, str) and v[:1] in ("{", "[")


def compare_attributes(oa, ob, where, strict_order, is_root):
    na, nb = set(oa.attrs.keys()), set(ob.attrs.keys())
    for n in sorted(na - nb):
        diff(where, f"attribute {n!r} only in A")
    for n in sorted(nb - na):
        diff(where, f"attribute {n!r} only in B")
    for n in sorted(na & nb):
        if is_root and n in IGNORED_H5_ROOT_ATTRIBUTES:
            continue
        w = f"{where} attribute {n!r}"
        (da, sa), (db, sb) = attr_raw(oa, n), attr_raw(ob, n)
        if dtype_desc(da) != dtype_desc(db) or sa != sb:
            diff(w, f"type {dtype_desc(da)} {sa} in A, {dtype_desc(db)} {sb} in B")
            continue
        va, vb = oa.attrs[n], ob.attrs[n]
        if isinstance(va, bytes) and isinstance(vb, bytes):
            va, vb = va.decode("utf-8", "surrogateescape"), vb.decode("utf-8", "surrogateescape")
        if looks_like_json(va) and looks_like_json(vb):
            try:
                ja, jb = json.loads(va, object_pairs_hook=_pairs), json.loads(vb, object_pairs_hook=_pairs)
            except ValueError:
                ja = jb = None
            if ja is not None:
                kind = "provenance" if n == "provenance" else "attr"
                compare_json_values(ja, jb, w, [], kind, strict_order)
                continue
        if isinstance(va, str) and isinstance(vb, str):
            if map_str(va) != vb:
                diff(w, f"{short(va)} in A, {short(vb)} in B")
            continue
        compare_array(va, vb, w, "value")


def _pairs(kv):
    d = dict(kv)
    d["\0order"] = [k for k, _ in kv]
    return d


def dataset_layout(d):
    return {
        "chunks": d.chunks, "compression": d.compression, "compression_opts": d.compression_opts,
        "shuffle": d.shuffle, "fletcher32": d.fletcher32, "scaleoffset": d.scaleoffset,
        "maxshape": d.maxshape, "fillvalue": as_python(np.asarray(d.fillvalue)) if d.fillvalue is not None else None,
    }


def compare_h5_node(ga, gb, name, where, strict_order):
    oa, ob = (ga[name], gb[name]) if name else (ga, gb)
    label = f"{where}:/{name}"
    ta, tb = type(oa).__name__, type(ob).__name__
    if ta != tb:
        diff(label, f"{ta} in A, {tb} in B")
        return
    compare_attributes(oa, ob, label, strict_order, is_root=not name)
    if isinstance(oa, h5py.Dataset):
        if dtype_desc(oa.dtype) != dtype_desc(ob.dtype):
            diff(label, f"dtype {dtype_desc(oa.dtype)} in A, {dtype_desc(ob.dtype)} in B")
            return
        if oa.shape != ob.shape:
            diff(label, f"shape {oa.shape} in A, {ob.shape} in B")
            return
        la, lb = dataset_layout(oa), dataset_layout(ob)
        for k in la:
            if la[k] != lb[k]:
                diff(label, f"storage {k}: {short(la[k])} in A, {short(lb[k])} in B")
        if oa.shape is None:  # empty dataspace
            return
        compare_array(oa[()], ob[()], label, "values")
    elif isinstance(oa, h5py.Group):
        members_a, members_b = list(oa.keys()), list(ob.keys())
        for m in sorted(set(members_a) - set(members_b)):
            diff(label, f"member {m!r} only in A")
        for m in sorted(set(members_b) - set(members_a)):
            diff(label, f"member {m!r} only in B")
        if [m for m in members_a if m in members_b] != [m for m in members_b if m in members_a]:
            diff(label, f"member order differs: A {members_a}, B {members_b}")
        for m in members_a:
            if m not in members_b:
                continue
            child = f"{name}/{m}" if name else m
            la, lb = oa.get(m, getlink=True), ob.get(m, getlink=True)
            if type(la) is not type(lb):
                diff(f"{where}:/{child}", f"link {type(la).__name__} in A, {type(lb).__name__} in B")
                continue
            if isinstance(la, h5py.SoftLink):
                if la.path != lb.path:
                    diff(f"{where}:/{child}", f"soft link to {la.path} in A, {lb.path} in B")
                continue
            if isinstance(la, h5py.ExternalLink):
                if (la.filename, la.path) != (lb.filename, lb.path):
                    diff(f"{where}:/{child}", f"external link differs")
                continue
            compare_h5_node(ga, gb, child, where, strict_order)


def compare_h5(fa, fb, where, strict_order):
    try:
        ha = h5py.File(fa, "r")
    except OSError as e:
        diff(where, f"A cannot be opened as HDF5: {e}")
        return
    try:
        hb = h5py.File(fb, "r")
    except OSError as e:
        ha.close()
        diff(where, f"B cannot be opened as HDF5: {e}")
        return
    with ha, hb:
        if ha.userblock_size != hb.userblock_size:
            diff(where, f"userblock {ha.userblock_size} in A, {hb.userblock_size} in B")
        compare_h5_node(ha, hb, "", where, strict_order)


# ------------------------------------------------------------------------------------------------
# Text (dry-run and inspect output, the runs' stdout)
# ------------------------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^\[phases? [^\]]*\] ")             # "[phases 1+2] 31/31 matrices ... ETA", "[phase 3] ..."
RUN_ID = re.compile(r"\b(run|run_id|run id)( |: |=)[0-9a-f]{16}\b")


def normalise_text(text, root, header_durations):
    text = ANSI.sub("", text)
    if root:
        text = text.replace(root.rstrip("/") + "/", "<ROOT>/")
    lines = []
    for line in re.split(r"\r\n|\r|\n", text):
        if PROGRESS.match(line):
            continue
        line = RUN_ID.sub(r"\1\2<RUN_ID>", line)
        if header_durations and " -- phase" in line:   # the summary header ends with the run's wall time
            line = re.sub(r", [0-9.]+ (ms|s|min|h)$", ", <TIME>", line)
        lines.append(line)
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def compare_text(fa, fb, where, ra, rb):
    ta = map_str(open(fa, encoding="utf-8", errors="surrogateescape").read())
    tb = open(fb, encoding="utf-8", errors="surrogateescape").read()
    is_log = fa.endswith(".stdout")
    la = normalise_text(ta, ra, is_log)
    lb = normalise_text(tb, rb, is_log)
    if la == lb:
        return
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            diff(where, f"line {i + 1} differs:\n      A: {x}\n      B: {y}")
            break
    else:
        diff(where, f"{len(la)} lines in A, {len(lb)} in B (after normalising)")


# ------------------------------------------------------------------------------------------------
# Directories
# ------------------------------------------------------------------------------------------------

def list_files(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for f in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def presence_only(rel):
    parts = rel.split(os.sep)
    return "report" in parts[:-1] or rel.endswith(PRESENCE_ONLY_EXT)


def check_output_set(root, rel_dir, side):
    """A directory's vindex-manifest.json holds together: sizes, SHA-256s, run ids."""
    d = os.path.join(root, rel_dir)
    where = f"{os.path.join(rel_dir, MANIFEST)} ({side})"
    try:
        m = json.load(open(os.path.join(d, MANIFEST)))
        run_id = m["run_id"]
        files = m["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        diff(where, f"unreadable manifest: {e}")
        return
    for f in files:
        p = os.path.join(d, f["name"])
        try:
            data = open(p, "rb").read()
        except OSError as e:
            diff(where, f"{f['name']}: {e}")
            continue
        if len(data) != f["bytes"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            diff(where, f"{f['name']}: size or SHA-256 does not match the manifest (file changed after the run)")
        if f["name"].endswith(".json"):
            try:
                if json.loads(data).get("run_id") != run_id:
                    diff(where, f"{f['name']}: run_id is not the manifest's")
            except ValueError:
                pass
        elif f["name"].endswith(".h5"):
            try:
                with h5py.File(p, "r") as h:
                    rid = h.attrs.get("run_id")
                    rid = rid.decode() if isinstance(rid, bytes) else rid
                    if rid != run_id:
                        diff(where, f"{f['name']}: run_id attribute {rid!r} is not the manifest's")
            except OSError:
                pass


def compare_trees(a, b, strict_order, counts):
    fa, fb = list_files(a), list_files(b)
    for rel in sorted(fa - fb):
        diff(rel, f"only in A ({a})")
    for rel in sorted(fb - fa):
        diff(rel, f"only in B ({b})")
    ra, rb = os.path.abspath(a), os.path.abspath(b)
    for rel in sorted(fa & fb):
        pa, pb = os.path.join(a, rel), os.path.join(b, rel)
        if os.path.islink(pa) or os.path.islink(pb):
            if os.path.islink(pa) != os.path.islink(pb) or os.readlink(pa) != os.readlink(pb):
                diff(rel, "symbolic link differs")
            continue
        if presence_only(rel):
            counts["presence"] += 1
            continue
        if os.path.basename(rel) == MANIFEST:
            check_output_set(a, os.path.dirname(rel), "A")
            check_output_set(b, os.path.dirname(rel), "B")
        if rel.endswith(".h5"):
            compare_h5(pa, pb, rel, strict_order)
            counts["h5"] += 1
        elif rel.endswith(".json"):
            compare_json(pa, pb, rel, strict_order)
            counts["json"] += 1
        elif rel.endswith((".txt", ".stdout")):
            compare_text(pa, pb, rel, ra, rb)
            counts["text"] += 1
        else:
            counts["presence"] += 1


def main(argv):
    strict_order, limit, quiet = False, 200, False
    args = []
    i = 0
    while i < len(argv):
        x = argv[i]
        if x == "--strict-key-order":
            strict_order = True
        elif x == "-q":
            quiet = True
        elif x in ("--max", "--path-map") and i + 1 < len(argv):
            i += 1
            if x == "--max":
                limit = int(argv[i])
            else:
                if "=" not in argv[i]:
                    print("--path-map wants OLD=NEW", file=sys.stderr)
                    return 2
                path_map.append(tuple(argv[i].split("=", 1)))
        elif x in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            args.append(x)
        i += 1
    if "--" in args:
        k = args.index("--")
        left, right = args[:k], args[k + 1:]
    elif len(args) == 2:
        left, right = args[:1], args[1:]
    else:
        left, right = [], []
    if not left or len(left) != len(right):
        print(__doc__, file=sys.stderr)
        return 2
    for d in left + right:
        if not os.path.isdir(d):
            print(f"not a directory: {d}", file=sys.stderr)
            return 2
    counts = {"h5": 0, "json": 0, "text": 0, "presence": 0}
    for a, b in zip(left, right):
        before = len(diffs)
        compare_trees(a, b, strict_order, counts)
        if len(left) > 1:   # name the pair in its differences
            diffs[before:] = [f"[{a} | {b}] {d}" for d in diffs[before:]]
    summary = (f"{counts['h5']} HDF5, {counts['json']} JSON, {counts['text']} text file(s) compared, "
               f"{counts['presence']} checked for presence only")
    if not quiet:
        for w in warnings[:limit]:
            print(f"warning: {w}")
    if diffs:
        if not quiet:
            for d in diffs[:limit]:
                print(d)
            if len(diffs) > limit:
                print(f"... and {len(diffs) - limit} more")
        print(f"DIFFERENT: {len(diffs)} difference(s); {summary}")
        return 1
    print(f"IDENTICAL: {summary}" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
