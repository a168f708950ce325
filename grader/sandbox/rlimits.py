"""What a sandboxed child may use and see: its resource limits and its scrubbed environment."""

from __future__ import annotations

import os
import resource
from typing import Any

SAFE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    # One reduction order on every x86 CPU: ATen's AVX-512 kernels sum in 16 lanes where the default and AVX2
    # ones sum in 8, which moves a float32 mean by an ulp (docs/tolerances.md, "References across CPUs"). Passed through
    # below when set, so a test can grade under each capability.
    "ATEN_CPU_CAPABILITY": "default",
}
# Kept because some CPUs need them for correct BLAS results, and CUDA needs to see its devices.
PASSED_THROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES", "ATEN_CPU_CAPABILITY", "MKL_CBWR",
                  "MKL_ENABLE_INSTRUCTIONS")
OPEN_FILES = 256
FILE_SIZE_BYTES = 8 * 1024 * 1024
PROCESSES = 64  # per submission, threads included (RLIMIT_NPROC, and the pids cgroup where delegated)


def scrubbed_environment(home: str) -> dict[str, str]:
    env = dict(SAFE_ENV, HOME=home, TMPDIR=home)
    env.update({k: os.environ[k] for k in PASSED_THROUGH if k in os.environ})
    return env


def apply_rlimits(limits: dict[str, Any], processes: bool) -> None:
    cpu = int(limits["timeout"]) + 2
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, FILE_SIZE_BYTES),
              (resource.RLIMIT_NOFILE, OPEN_FILES)]
    if processes and hasattr(resource, "RLIMIT_NPROC"):
        wanted.append((resource.RLIMIT_NPROC, int(limits.get("processes", PROCESSES))))
    for name, value in wanted:
        _soft, hard = resource.getrlimit(name)
        cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(name, (cap, cap))
