"""Closing the doors in a forked child before student code runs: limits, environment, filesystem view.

`prepare()` runs once in the zygote; `enter()` runs in each forked child and returns the tier it reached,
which every report records.
"""

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
}
# Kept because some CPUs need them for correct BLAS results, and CUDA needs to see its devices.
PASSED_THROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES")
OPEN_FILES = 256
FILE_SIZE_BYTES = 8 * 1024 * 1024


def scrubbed_environment(home: str) -> dict[str, str]:
    env = dict(SAFE_ENV, HOME=home, TMPDIR=home)
    env.update({k: os.environ[k] for k in PASSED_THROUGH if k in os.environ})
    return env


def prepare() -> None:
    """Once per zygote, before any job."""


def apply_rlimits(limits: dict[str, Any]) -> None:
    cpu = int(limits["timeout"]) + 2
    for name, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, FILE_SIZE_BYTES),
        (resource.RLIMIT_NOFILE, OPEN_FILES),
    ):
        soft, hard = resource.getrlimit(name)
        cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(name, (cap, cap))


def enter(job: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Isolate this (forked, single-threaded) child. Returns what was achieved."""
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(scrubbed_environment(workdir))
    apply_rlimits(job["limits"])
    return {"tier": "process", "defences": ["rlimits", "scrubbed-env", "fresh-workdir", "process-tree-kill"]}
