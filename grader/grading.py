"""The library API: grade one submission file and get a Report. The CLI and batch mode both call this.

The flow runs one way: read the file (submission.py) → run the probes in a sandboxed child (sandbox/)
→ compare with the recorded references (checks.py) → Report (report.py).
"""

from __future__ import annotations

import importlib.metadata
import platform
import signal
import time
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from grader import __version__, checks, diagnose, exercises
from grader.report import CheckResult, Report, Status
from grader.sandbox.runner import Outcome, SandboxFailure, Zygote
from grader.submission import Loaded, read

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MIB = 2048
DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailable(RuntimeError):
    """--device cuda on a machine without CUDA: a usage error."""


@dataclass(frozen=True)
class Limits:
    timeout: float = DEFAULT_TIMEOUT_S
    memory_mib: int = DEFAULT_MEMORY_MIB

    def as_job(self) -> dict[str, Any]:
        return {"timeout": float(self.timeout), "memory_mib": int(self.memory_mib)}


@cache  # importlib.metadata parses torch's METADATA file: ~10 ms, once per grade otherwise
def versions() -> dict[str, str]:
    def installed(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": installed("torch")}


def start_worker(exercise_id: str, device: str = "auto") -> Zygote:
    """Start a worker for an exercise now, so its imports overlap whatever the caller does next."""
    return Zygote(exercises.framework_of(exercise_id), want_cuda=device != "cpu")


def resolve_devices(exercise: exercises.Exercise, device: str, worker_info: dict[str, Any]) -> list[str]:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}")
    cuda = bool(worker_info.get("cuda"))
    if device == "cuda" and not cuda:
        raise DeviceUnavailable("--device cuda was asked for, but CUDA is not available on this machine.")
    if exercise.framework == "numpy":
        return ["cpu"]  # NumPy arrays live on the CPU whatever the device
    if device == "auto":
        return ["cpu", "cuda"] if cuda else ["cpu"]
    return [device]


def grade(exercise_id: str, path: Path | str, *, device: str = "auto", limits: Limits | None = None,
          worker: Zygote | None = None, include_hidden: bool = True) -> Report:
    """Grade one file. Raises SubmissionNotFound / DeviceUnavailable / KeyError for usage errors only."""
    started = time.monotonic()
    exercise = exercises.load(exercise_id)
    limits = limits or Limits()
    own_worker = worker is None
    if own_worker:
        worker = start_worker(exercise_id, device)
    try:
        loaded = read(Path(path), exercise_id)
        selected = tuple(c for c in exercise.checks if include_hidden or c.visibility == "visible")
        info = worker.info()
        devices = resolve_devices(exercise, device, info)
        if loaded.problem:
            outcome, problem, tier = None, loaded.problem, {"tier": "not-run"}
        else:
            outcome, problem, tier = _run(worker, exercise, loaded, selected, devices, limits)
    finally:
        if own_worker:
            worker.close()
    results = _results(exercise, selected, devices, outcome, problem)
    skipped_cells = notebook_cell_problems(outcome)
    if skipped_cells and not all(r.passed for r in results):  # why a function may be missing or stale
        problem = f"{problem} {skipped_cells}" if problem else skipped_cells
    return Report(
        exercise=exercise.id,
        title=exercise.title,
        submission=loaded.submission,
        checks=results,
        devices=tuple(devices),
        grader_version=__version__,
        versions=versions(),
        sandbox={**tier, "limits": limits.as_job()},
        duration_s=round(time.monotonic() - started, 3),
        error=problem,
        output=outcome.output if outcome else "",
        references_sha256=exercise.references_digest(),
    )


def _run(worker: Zygote, exercise: exercises.Exercise, loaded: Loaded, selected: tuple[Any, ...],
         devices: list[str], limits: Limits) -> tuple[Outcome | None, str | None, dict[str, Any]]:
    job = {
        "exercise": exercise.id,
        "module_name": exercise.id,
        "probe_source": exercise.probe_source,
        "cells": [{"label": c.label, "source": c.source} for c in loaded.cells],
        "forgiving_cells": loaded.submission.kind == "ipynb",
        "invocations": exercise.invocations(selected),
        "devices": devices,
        "limits": limits.as_job(),
    }
    try:
        outcome = worker.run(job)
    except SandboxFailure as exc:
        return None, f"the grader could not run your submission ({exc}); please report this.", {"tier": "failed"}
    hello = next((m for m in outcome.messages if m["type"] == "hello"), {})
    # The child's hello is sent before student code runs; when the channel was rejected, the worker knows.
    tier = hello.get("tier") if isinstance(hello.get("tier"), dict) else {"tier": worker.tier}
    return outcome, run_problem(outcome, limits), tier


def run_problem(outcome: Outcome, limits: Limits) -> str | None:
    """What went wrong with the run as a whole, in words for the student (None when it finished)."""
    load_error = next((m for m in outcome.messages if m["type"] == "load_error" and not m.get("continued")), None)
    if outcome.channel_error:
        return f"the grader rejected your results: {outcome.channel_error}."
    if load_error:
        error = load_error.get("error")
        return "your file could not be imported: " + describe_load_error(error if isinstance(error, dict) else {})
    if outcome.memory_exceeded:
        return f"your code used more than {limits.memory_mib} MiB of memory and was stopped."
    if outcome.timed_out:
        return (f"your code did not finish within {limits.timeout:g} s (an endless loop, or far too many "
                "epochs?); checks that had not finished get no points.")
    if any(m["type"] == "done" for m in outcome.messages):
        return None
    if outcome.signal:
        name = signal.Signals(outcome.signal).name if outcome.signal in signal.Signals._value2member_map_ else ""
        return f"your code crashed the grading process (signal {outcome.signal} {name}).".replace(" )", ")")
    return (f"your code ended the grading process early (exit status {outcome.exit_code}). "
            "Did you call sys.exit(), exit() or os._exit()?")


def notebook_cell_problems(outcome: Outcome | None) -> str | None:
    """The notebook cells that raised and were skipped (the others still ran), in words for the student."""
    errors = [m.get("error") for m in (outcome.messages if outcome else ())
              if m["type"] == "load_error" and m.get("continued")]
    described = [describe_cell_error(e) for e in errors if isinstance(e, dict)]
    if not described:
        return None
    more = f"; and {len(described) - 3} more" if len(described) > 3 else ""
    return "Some cells of your notebook raised an error, and the code after the error in each was not run: " + \
        "; ".join(described[:3]) + more + "."


def describe_cell_error(error: dict[str, Any]) -> str:
    lines = str(error.get("message", "")).strip().splitlines() or ["an error"]
    where, cell = error.get("where"), str(error.get("cell") or "")
    text = lines[-1] + (f" (at {where})" if where else "")
    if cell and not str(where or "").startswith(cell + ","):  # raised in a function another cell defined
        text = f"{cell} stopped: {text}"
    if error.get("type") == "EOFError":
        text += " — input() cannot read anything while grading; give the value directly instead"
    return text


def describe_load_error(error: dict[str, Any]) -> str:
    kind, message, where = error.get("type"), str(error.get("message", "")), error.get("where")
    text = message + (f" (at {where})" if where else "")
    if kind == "EOFError":
        text += (" Your file calls input() while it is being imported, and input() is not available while "
                 "grading (there is no keyboard): remove the input() call or put it under "
                 "`if __name__ == '__main__':`.")
    elif kind == "SystemExit":
        text += " Your file calls sys.exit() or exit() while it is being imported."
    elif kind == "ModuleNotFoundError":
        text += " Only numpy and torch (and the standard library) are available while grading."
    return text


def _results(exercise: exercises.Exercise, selected: tuple[Any, ...], devices: list[str],
             outcome: Outcome | None, problem: str | None) -> tuple[CheckResult, ...]:
    references = exercise.references()
    received: dict[tuple[str, str], dict[str, Any]] = {}
    for message in outcome.messages if outcome else ():
        if message["type"] == "result":
            received.setdefault((str(message.get("key")), str(message.get("device"))), message)
    timed_out = bool(outcome and outcome.timed_out)
    peers = {device: tuple(diagnose.Peer(c, _fields(received.get((c.key, device))),
                                         (references.get(c.key) or {}).get("fields")) for c in selected)
             for device in devices}
    results = []
    for check in selected:
        per_device = [
            checks.evaluate(exercise, check, received.get((check.key, device)), references.get(check.key),
                            device, problem, timed_out, peers[device])
            for device in devices
        ]
        results.append(_combine(per_device, devices))
    return tuple(results)


def _fields(message: dict[str, Any] | None) -> dict[str, Any] | None:
    """A result's fields when its probe ran without an error: evidence for the other checks' diagnoses."""
    fields = message.get("fields") if message and message.get("ok") else None
    return fields if isinstance(fields, dict) else None


def _combine(per_device: list[CheckResult], devices: list[str]) -> CheckResult:
    """One result per check: passed only if it passed on every device; else the first failure."""
    failing = [r for r in per_device if r.status is not Status.PASSED]
    if not failing:
        return replace(per_device[0], device=",".join(devices))
    first = failing[0]
    if len(devices) > 1:
        return replace(first, message=f"[on {first.device}] {first.message}")
    return first


def report_without_run(exercise_id: str, path: Path | str, problem: str, limits: Limits | None = None,
                       tier: str = "failed") -> Report:
    """A valid report for a submission that was never run to the end (every check gets `problem`, no
    points): what the service stores when a submission has broken its worker too many times."""
    exercise = exercises.load(exercise_id)
    limits = limits or Limits()
    loaded = read(Path(path), exercise_id)
    devices = ["cpu"]
    results = _results(exercise, exercise.checks, devices, None, problem)
    return Report(exercise=exercise.id, title=exercise.title, submission=loaded.submission, checks=results,
                  devices=tuple(devices), grader_version=__version__, versions=versions(),
                  sandbox={"tier": tier, "limits": limits.as_job()}, error=problem,
                  references_sha256=exercise.references_digest())
