"""Shared fixtures: one pre-warmed worker per framework for the whole session, so tests stay fast."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from grader.course import exercises
from grader.grading import pipeline as grading
from grader.sandbox.client import ZygoteClient

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "tests" / "submissions"
ATTACKS = ROOT / "tests" / "attacks"

# Tests live in folders that mirror grader/'s packages; a test module may import another's helpers by its name
# (from test_batch import make_class), as when they shared one folder.
TEST_FOLDERS = ("model", "course", "grading", "sandbox", "execution", "authoring", "formats", "notebook",
                "classroom", "lms", "service", "cli")
sys.path[:0] = [str(ROOT / "tests" / folder) for folder in TEST_FOLDERS if str(ROOT / "tests" / folder) not in sys.path]


def full_marks(exercise_id: str) -> str:
    """EX's total points as the gradebook writes them ("16"): what a pin on a correct solution's score reads, so
    that a check added to the exercise does not break tests about something else."""
    return f"{sum(c.points for c in exercises.load(exercise_id).checks):g}"


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
        self._workers: dict[tuple[str, bool], ZygoteClient] = {}

    def get(self, exercise_id: str, want_cuda: bool = False) -> ZygoteClient:
        key = (exercises.framework_of(exercise_id), want_cuda)
        worker = self._workers.get(key)
        if worker is None or not worker.alive:
            worker = self._workers[key] = ZygoteClient(key[0], want_cuda=want_cuda)
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
    """sandbox_workers(tier, cgroups=True, framework="torch") -> a ZygoteClient held at that sandbox tier."""
    started: dict[tuple[str, bool, str], ZygoteClient] = {}

    def get(tier: str, cgroups: bool = True, framework: str = "torch") -> ZygoteClient:
        key = (tier, cgroups, framework)
        if key not in started or not started[key].alive:
            started[key] = ZygoteClient(framework, sandbox=tier, cgroups=cgroups)
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


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on loopback for the service tests (service_support.Postgres), one per session."""
    from service_support import Postgres

    server = Postgres()
    yield server
    server.close()
