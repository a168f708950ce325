"""The library API: grade one submission file and get a Report. The CLI and batch mode both call this.

The flow runs one way: read the file (submission.py) → run the probes in a sandboxed child (sandbox/)
→ compare with the recorded references (checks.py) → Report (report.py).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import platform
import secrets
import signal
import time
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from grader import __version__
from grader.course import exercises, hints
from grader.course.source import Code
from grader.course.submission import MAX_SUBMISSION_BYTES, Loaded, file_sha256, read
from grader.grading import checks, diagnose
from grader.model.report import CheckResult, Report, RunStatus, Status, Submission
from grader.sandbox.client import ZygoteClient
from grader.sandbox.protocol import (
    COUNTERFACTUAL,
    ChildError,
    Done,
    Hello,
    Outcome,
    Phase,
    Ready,
    Result,
    SandboxFailure,
)
from grader.sandbox.tiers import Tier

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


def start_worker(exercise_id: str, device: str = "auto") -> ZygoteClient:
    """Start a worker for an exercise now, so its imports overlap whatever the caller does next."""
    return ZygoteClient(exercises.framework_of(exercise_id), want_cuda=device != "cpu")


def resolve_devices(exercise: exercises.Exercise, device: str, worker_info: dict[str, Any]) -> list[str]:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}")
    cuda = Ready.from_wire(worker_info).cuda
    if device == "cuda" and not cuda:
        raise DeviceUnavailable("--device cuda was asked for, but CUDA is not available on this machine.")
    if exercise.framework == "numpy":
        return ["cpu"]  # NumPy arrays live on the CPU whatever the device
    if device == "auto":
        return ["cpu", "cuda"] if cuda else ["cpu"]
    return [device]


def grade(exercise_id: str, path: Path | str, *, device: str = "auto", limits: Limits | None = None,
          worker: ZygoteClient | None = None, include_hidden: bool = True) -> Report:
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
        outcome, failure, tier = None, None, {"tier": Tier.NOT_RUN}
        counterfactual: dict[tuple[str, str], checks.Counterfactual] = {}
        if not loaded.problem:
            factors = draw_factors() if any(c.compare == "process" for c in selected) else None
            outcome, failure, tier = run_probes(worker, exercise, loaded, selected, devices, limits, factors)
            counterfactual = counterfactual_results(outcome, factors, selected, devices)
    finally:
        if own_worker:
            worker.close()
    status = run_status(loaded, outcome, failure)
    problem = run_problem(status, loaded, outcome, limits, failure)
    source = Code((c.label, c.source) for c in loaded.cells)
    results = _results(exercise, selected, devices, outcome, problem, source, counterfactual)
    skipped_cells = notebook_cell_problems(outcome)
    if skipped_cells and not all(r.passed for r in results):  # why a function may be missing or stale
        problem = f"{problem} {skipped_cells}" if problem else skipped_cells
    return hints.annotate(Report(  # the one place a report's checks get the hint that helps
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
        output=labelled_output(outcome, selected, devices, Path(loaded.submission.path).name),
        references_sha256=exercise.references_digest(),
        status=status,
        hidden_output=outcome.hidden_output if outcome else "",
        cell_errors=tuple(notebook_cell_errors(outcome)),
    ))


def failure_report(exercise_id: str, path: Path | str, reason: str, limits: Limits | None = None) -> Report:
    """A report for a run the grader itself could not finish (status `grader-failure`): every check at zero.

    Built from as little as possible (the exercise's spec, the file's digest when it can be read), since
    something already went wrong.
    """
    try:
        exercise = exercises.load(exercise_id)
        names = [(c.name, c.points, c.visibility) for c in exercise.checks]
        title, digest = exercise.title, exercise.references_digest()
    except Exception:  # noqa: BLE001 - the failure being reported may be this very one
        names, title, digest = [], exercise_id, ""
    try:
        sha, size = file_sha256(Path(path)), min(Path(path).stat().st_size, MAX_SUBMISSION_BYTES + 1)
    except (OSError, ValueError):
        sha, size = "0" * 64, 0
    kind = "ipynb" if str(path).endswith(".ipynb") else "py"
    message = f"the grader failed ({reason}); this is not your doing: please report it."
    return Report(
        exercise=exercise_id, title=title, submission=Submission(str(path), sha, kind, size),
        checks=tuple(CheckResult(name=n, status=Status.ERROR, score=0.0, max_score=p, symptom=message,
                                 visibility=v) for n, p, v in names),
        devices=(), grader_version=__version__, versions=versions(),
        sandbox={"tier": Tier.FAILED, "limits": (limits or Limits()).as_job()}, error=message,
        references_sha256=digest, status=RunStatus.GRADER_FAILURE,
    )


def run_probes(worker: ZygoteClient, exercise: exercises.Exercise, loaded: Loaded, selected: tuple[Any, ...],
               devices: list[str], limits: Limits, factors: tuple[float, float] | None = None,
               ) -> tuple[Outcome | None, str | None, dict[str, Any]]:
    """Run the probes of `selected` on `loaded` in `worker`: the typed outcome (None and the reason when the
    worker itself failed) and the sandbox tier the job ran at. What grade(), `grade record`, the doctor and
    the benchmarks run submissions through.

    With `factors` (gradient, rate), the process checks' calls run once more at the end, for their first few
    epochs, with autograd and torch.optim perturbed by them (probing.perturb): the evidence by intervention that
    checks.counterfactual_response judges, set apart in the outcome's `counterfactual`. A hidden check's call
    goes with the hidden calls, so that its inputs reach the child only in their phase."""
    hidden = hidden_keys(selected)
    process = {c.key for c in selected if c.compare == "process"}
    perturbed = [{**i, "args": checks.counterfactual_args(i["args"])} for i in exercise.invocations(selected)
                 if i["key"] in process] if factors else []
    job = {
        "exercise": exercise.id,
        "module_name": exercise.id,
        "probe_source": exercise.probe_source,
        "cells": [{"label": c.label, "source": c.source} for c in loaded.cells],
        "forgiving_cells": loaded.submission.kind == "ipynb",
        "invocations": [i for i in exercise.invocations(selected) if i["key"] not in hidden],
        "hidden_invocations": [i for i in exercise.invocations(selected) if i["key"] in hidden],
        "devices": devices,
        "limits": limits.as_job(),
    }
    if perturbed and factors:
        job["counterfactual"] = {"gradient": factors[0], "rate": factors[1],
                                 "invocations": [i for i in perturbed if i["key"] not in hidden]}
        job["hidden_counterfactual"] = [i for i in perturbed if i["key"] in hidden]
    try:
        outcome = worker.run(job)
    except SandboxFailure as exc:
        return None, str(exc), {"tier": Tier.FAILED}
    outcome = in_their_phase(outcome, hidden)
    hello = outcome.hello
    # The child's hello is sent before student code runs; when the channel was rejected, the worker knows.
    tier = hello.tier if hello is not None and hello.tier is not None else {"tier": worker.tier}
    return outcome, None, tier


# The factors of the counterfactual calls: gradients scaled by 0.4-0.5 and learning rates by 0.6-0.7 (so that
# none, either and both, 1, g, r and g·r, lie at least 0.1 apart), drawn by the parent for each run.
GRADIENT_FACTORS, RATE_FACTORS = (0.4, 0.5), (0.6, 0.7)


def draw_factors() -> tuple[float, float]:
    draw = secrets.SystemRandom()
    return round(draw.uniform(*GRADIENT_FACTORS), 6), round(draw.uniform(*RATE_FACTORS), 6)


def counterfactual_results(outcome: Outcome | None, factors: tuple[float, float] | None,
                           selected: tuple[Any, ...], devices: list[str]) -> dict[tuple[str, str], checks.Counterfactual]:
    """Per (process check's call, device), what its counterfactual call returned, with the factors it ran at."""
    if factors is None:
        return {}
    received = {(r.key[len(COUNTERFACTUAL):], r.device): r for r in (outcome.counterfactual if outcome else ())}
    found = {}
    for key in {c.key for c in selected if c.compare == "process"}:
        for device in devices:
            result = received.get((key, device))
            fields = result.fields if result is not None and result.ok and isinstance(result.fields, dict) else None
            found[(key, device)] = checks.Counterfactual(*factors, fields)
    return found


def hidden_keys(selected: tuple[Any, ...]) -> set[str]:
    """The runs only hidden checks use: their inputs reach the child only after the visible checks are done."""
    visible = {c.key for c in selected if c.visibility == "visible"}
    return {c.key for c in selected if c.visibility == "hidden" and c.key not in visible}


def in_their_phase(outcome: Outcome, hidden: set[str]) -> Outcome:
    """Only the messages sent in their own phase: visible results and load errors before the hidden checks'
    inputs were handed over, hidden results after. A visible result sent later could carry the hidden inputs
    into what the student reads (its message), so it is dropped, and its check gets no result."""
    def hidden_result(message: Any) -> bool:
        return isinstance(message, Result) and message.key in hidden

    if outcome.hidden_from is None:
        kept = [m for m in outcome.messages if not hidden_result(m)]
    else:
        kept = [m for i, m in enumerate(outcome.messages)
                if isinstance(m, (Hello, Phase, Done))
                or (i < outcome.hidden_from and not hidden_result(m))
                or (i > outcome.hidden_from and hidden_result(m))]
    # The counterfactual calls come last, after the hidden phase when there is one; only their fields are read
    # (never their messages), so they are set apart whatever their phase.
    def counterfactual(message: Any) -> bool:
        return isinstance(message, Result) and message.key.startswith(COUNTERFACTUAL)

    return replace(outcome, messages=tuple(m for m in kept if not counterfactual(m)),
                   counterfactual=tuple(m for m in outcome.messages if counterfactual(m)))


def labelled_output(outcome: Outcome | None, selected: tuple[Any, ...], devices: list[str],
                    label: str = "your file") -> str:
    """What the submission printed in view, each part under the check that printed it.

    The harness sends each result's output offsets: they are the child's word, so they only ever cut the
    visible output into sections (never reach the hidden output), and where they do not add up the output is
    shown whole, unlabelled."""
    if outcome is None:
        return ""
    raw = outcome.output_raw
    names = {}
    for check in selected:  # a run several checks share is named after the first of them
        names.setdefault(check.key, check.name)
    cuts = []
    for result in outcome.results:
        at = result.output_at
        if at is not None:
            name = names.get(result.key, result.key)
            if len(devices) > 1:
                name += f", on {result.device}"
            cuts.append((int(min(max(at[0], 0), len(raw))), int(min(max(at[1], 0), len(raw))), name))
    if not any(end > start for start, end, _ in cuts):
        return outcome.output
    if any(end < start for start, end, _ in cuts) or any(b[0] < a[1] for a, b in itertools.pairwise(cuts)):
        return outcome.output
    sections, position = [], 0
    for start, end, name in cuts:
        if start > position:
            sections.append((f"while running {label}", raw[position:start]))
        if end > start:
            sections.append((name, raw[start:end]))
        position = max(position, end)
    if position < len(raw):
        sections.append(("after the checks", raw[position:]))
    text = "".join(f"[{name}]\n" + part.decode("utf-8", "replace").rstrip("\n") + "\n" for name, part in sections
                   if part.strip())
    truncated = outcome.output[len(outcome.output_raw.decode("utf-8", "replace")):]
    return text + truncated.lstrip("\n") if truncated else text


def run_status(loaded: Loaded, outcome: Outcome | None, failure: str | None) -> RunStatus:
    """How the run as a whole ended (the report's `status`): the one place that decides it.

    From what happened only: the reader's verdict, the worker's account (exit status, signal, limits) and
    the kinds of message on the channel; never from the wording of a message.
    """
    if loaded.problem:
        return RunStatus(loaded.problem_status or RunStatus.UNREADABLE)
    if failure is not None or outcome is None:
        return RunStatus.GRADER_FAILURE
    if outcome.channel_error:
        return RunStatus.REJECTED
    if outcome.load_error is not None:
        return RunStatus.EXITED if outcome.load_error.error.type == "SystemExit" else RunStatus.IMPORT_ERROR
    if outcome.memory_exceeded:
        return RunStatus.MEMORY_LIMIT
    if outcome.timed_out:
        return RunStatus.TIMEOUT
    if outcome.done:
        return RunStatus.OK
    if outcome.signal:
        return RunStatus.CRASHED
    if outcome.hello is None:
        return RunStatus.GRADER_FAILURE  # the child never reached the point where a submission's code can run
    return RunStatus.EXITED


def run_problem(status: RunStatus, loaded: Loaded, outcome: Outcome | None, limits: Limits,
                failure: str | None = None) -> str | None:
    """What went wrong with the run as a whole, in words for the student (None when it finished)."""
    if status in (RunStatus.UNREADABLE, RunStatus.SYNTAX_ERROR):
        return loaded.problem
    if status is RunStatus.OK:
        return None
    if status is RunStatus.GRADER_FAILURE or outcome is None:
        return f"the grader could not run your submission ({failure or 'its sandbox did not start'}); " \
               "please report this."
    if status is RunStatus.REJECTED:
        return f"the grader rejected your results: {outcome.channel_error}."
    if status in (RunStatus.IMPORT_ERROR, RunStatus.EXITED) and outcome.load_error is not None:
        return "your file could not be imported: " + describe_load_error(outcome.load_error.error)
    if status is RunStatus.MEMORY_LIMIT:
        return f"your code used more than {limits.memory_mib} MiB of memory and was stopped."
    if status is RunStatus.TIMEOUT:
        return (f"your code did not finish within {limits.timeout:g} s (an endless loop, or far too many "
                "epochs?); checks that had not finished get no points.")
    if status is RunStatus.CRASHED:
        sig = outcome.signal
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else ""
        return f"your code crashed the grading process (signal {sig} {name}).".replace(" )", ")")
    return (f"your code ended the grading process early (exit status {outcome.exit_code}). "
            "Did you call sys.exit(), exit() or os._exit()?")


def notebook_cell_errors(outcome: Outcome | None) -> list[str]:
    """Each notebook cell that raised (the cells after it still ran), in words for the student; listed in
    every report, full marks or not (Report.cell_errors)."""
    return [describe_cell_error(e) for e in (outcome.cell_errors if outcome else ())]


def notebook_cell_problems(outcome: Outcome | None) -> str | None:
    """The notebook cells that raised and were skipped (the others still ran), in words for the student."""
    described = notebook_cell_errors(outcome)
    if not described:
        return None
    more = f"; and {len(described) - 3} more" if len(described) > 3 else ""
    return "Some cells of your notebook raised an error, and the code after the error in each was not run: " + \
        "; ".join(described[:3]) + more + "."


def describe_cell_error(error: ChildError) -> str:
    lines = error.message.strip().splitlines() or ["an error"]
    where, cell = error.where, error.cell
    text = lines[-1] + (f" (at {where})" if where else "")
    if cell and not str(where or "").startswith(cell + ","):  # raised in a function another cell defined
        text = f"{cell} stopped: {text}"
    if error.type == "EOFError":
        text += " — input() cannot read anything while grading; give the value directly instead"
    return text


def describe_load_error(error: ChildError) -> str:
    kind, message, where = error.type, error.message, error.where
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
             outcome: Outcome | None, problem: str | None, source: Code | None = None,
             counterfactual: dict[tuple[str, str], checks.Counterfactual] | None = None) -> tuple[CheckResult, ...]:
    references = exercise.references()
    received: dict[tuple[str, str], Result] = {}
    for result in outcome.results if outcome else ():
        received.setdefault((result.key, result.device), result)
    timed_out = bool(outcome and outcome.timed_out)
    peers = {device: tuple(diagnose.Peer(c, _fields(received.get((c.key, device)), references.get(c.key)),
                                         (references.get(c.key) or {}).get("fields")) for c in selected)
             for device in devices}
    results = []
    for check in selected:
        per_device = [
            _evaluate(exercise, check, received.get((check.key, device)), references.get(check.key), device,
                      problem, timed_out, peers[device], source, (counterfactual or {}).get((check.key, device)))
            for device in devices
        ]
        results.append(_combine(per_device, devices))
    return tuple(results)


def _evaluate(exercise: exercises.Exercise, check: Any, observed: Result | None,
              reference: dict[str, Any] | None, device: str, problem: str | None, timed_out: bool,
              peers: tuple[Any, ...], source: Code | None = None,
              counterfactual: checks.Counterfactual | None = None) -> CheckResult:
    """checks.evaluate, fenced: the numbers are the submission's, so whatever they make the comparison or a
    diagnosis do (an overflow, a recursion, an error nobody foresaw) fails this check alone, never the run."""
    try:
        return checks.evaluate(exercise, check, observed, reference, device, problem, timed_out, peers, source,
                               counterfactual)
    except Exception:  # noqa: BLE001 - see above
        return CheckResult(name=check.name, status=Status.FAILED, score=0.0, max_score=check.points,
                           symptom=checks.MALFORMED_RESULT, visibility=check.visibility, device=device)


def _fields(result: Result | None, reference: dict[str, Any] | None) -> dict[str, Any] | None:
    """A result's fields when its probe ran without an error and its arrays have the reference's shapes:
    evidence for the other checks' diagnoses."""
    fields = result.fields if result and result.ok else None
    if not isinstance(fields, dict) or not checks.shapes_fit(fields, (reference or {}).get("fields") or {}):
        return None
    return fields


def _combine(per_device: list[CheckResult], devices: list[str]) -> CheckResult:
    """One result per check: passed only if it passed on every device; else the first failure."""
    failing = [r for r in per_device if r.status is not Status.PASSED]
    if not failing:
        return replace(per_device[0], device=",".join(devices))
    first = failing[0]
    if len(devices) > 1:
        return replace(first, failed_on=first.device)
    return first


def report_without_run(exercise_id: str, path: Path | str, problem: str, limits: Limits | None = None,
                       tier: str = Tier.FAILED) -> Report:
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
