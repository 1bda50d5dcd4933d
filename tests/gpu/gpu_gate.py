"""The gate of the `gpu` tests (CTest label gpu): runs vindex_cuda_probe (tests/gpu/cuda_probe.cpp)
and, where no CUDA device can be used, exits with its code -- 77, CTest's SKIP_RETURN_CODE for
these tests, after printing why (1 instead where VINDEX_REQUIRE_GPU is set: tools/gpu_check.sh)."""
import subprocess
import sys


def require_gpu(probe):
    p = subprocess.run([probe], capture_output=True, text=True, timeout=120)
    sys.stdout.write(p.stdout)
    sys.stdout.flush()
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        sys.exit(p.returncode)
