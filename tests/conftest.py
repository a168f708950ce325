"""Shared fixtures: one pre-warmed worker per framework for the whole session, so tests stay fast."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from grader import exercises, grading
from grader.sandbox.runner import Zygote

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "tests" / "submissions"
ATTACKS = ROOT / "tests" / "attacks"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cpu_capabilities() -> list[str]:
    """The ATen CPU capabilities this CPU can run: default everywhere, avx2 and avx512 where its flags say so."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = set(next(line for line in cpuinfo if line.startswith("flags")).split())
    except (OSError, StopIteration):
        flags = set()
    found = ["default"]
    if platform.machine() in ("x86_64", "AMD64"):
        found += [name for name, needs in (("avx2", {"avx2", "fma"}), ("avx512", {"avx512f", "avx512bw"}))
                  if needs <= flags]
    return found


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")


class Workers:
    """Zygotes shared across tests, restarted if a test killed one."""

    def __init__(self) -> None:
        self._workers: dict[tuple[str, bool], Zygote] = {}

    def get(self, exercise_id: str, want_cuda: bool = False) -> Zygote:
        key = (exercises.framework_of(exercise_id), want_cuda)
        worker = self._workers.get(key)
        if worker is None or not worker.alive:
            worker = self._workers[key] = Zygote(key[0], want_cuda=want_cuda)
        return worker

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()


@pytest.fixture(scope="session")
def workers():
    pool = Workers()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def sandbox_workers():
    """sandbox_workers(tier, cgroups=True, framework="torch") -> a Zygote held at that sandbox tier."""
    started: dict[tuple[str, bool, str], Zygote] = {}

    def get(tier: str, cgroups: bool = True, framework: str = "torch") -> Zygote:
        key = (tier, cgroups, framework)
        if key not in started or not started[key].alive:
            started[key] = Zygote(framework, sandbox=tier, cgroups=cgroups)
        return started[key]

    yield get
    for worker in started.values():
        worker.close()


@pytest.fixture(scope="session")
def grade_file(workers):
    """grade_file(exercise, path, **options) -> Report, through a shared warm worker."""

    def run(exercise_id: str, path: Path | str, device: str = "cpu", **options) -> grading.Report:
        worker = workers.get(exercise_id, want_cuda=device != "cpu")
        return grading.grade(exercise_id, path, device=device, worker=worker, **options)

    return run
