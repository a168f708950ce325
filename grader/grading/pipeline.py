"""The library API: grade one submission file and get a Report. The CLI and batch mode both call this.

The flow runs one way: read the file (submission.py) → run the probes in a sandboxed child (sandbox/)
→ compare with the recorded references (checks.py) → Report (report.py).
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from grader.course import exercises
from grader.course.source import Code
from grader.course.submission import Loaded, read
from grader.grading import build, checks, compare
from grader.grading.build import (  # noqa: F401 - the library API names them here too
    describe_cell_error,
    describe_load_error,
    failure_report,
    notebook_cell_errors,
    notebook_cell_problems,
    report_without_run,
    run_problem,
    run_status,
    versions,
)
from grader.model.job import (  # noqa: F401 - the API names the defaults and Limits
    DEFAULT_MEMORY_MIB,
    DEFAULT_TIMEOUT_S,
    Cell,
    Invocation,
    Job,
    Limits,
    Perturbed,
)
from grader.model.report import Report
from grader.sandbox.client import ZygoteClient
from grader.sandbox.protocol import (
    COUNTERFACTUAL,
    Done,
    Hello,
    Outcome,
    Phase,
    Ready,
    Result,
    SandboxFailure,
)
from grader.sandbox.tiers import Tier

DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailable(RuntimeError):
    """--device cuda on a machine without CUDA: a usage error."""


# A check's call that has not returned by its budget is stopped (sandbox/budget.py). The budget derives from
# the time its reference call took when it was recorded (references/timing.json): CALL_BUDGET_FACTOR times it
# (a student's loop may well be slower than the reference's), with CALL_BUDGET_FLOOR_S as its floor (every
# reference call of the course returns within 0.3 s on a 2-core laptop: the floor leaves a loaded machine 15
# times that), and never more than half the whole run's limit; a device's first call gets 4 budgets (torch's
# lazy setup).
CALL_BUDGET_FLOOR_S = 5.0
CALL_BUDGET_FACTOR = 30.0


def call_budget(limits: Limits, reference_s: float | None = None) -> float:
    """The budget of one probe call whose reference took `reference_s` (None: not recorded, the floor)."""
    wanted = max(CALL_BUDGET_FLOOR_S, CALL_BUDGET_FACTOR * (reference_s or 0.0))
    return max(0.5, min(wanted, float(limits.timeout) / 2))



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
    active = worker if worker is not None else start_worker(exercise_id, device)
    try:
        loaded = read(Path(path), exercise_id)
        selected = tuple(c for c in exercise.checks if include_hidden or c.visibility == "visible")
        info = active.info()
        devices = resolve_devices(exercise, device, info)
        outcome, failure, tier = None, None, {"tier": Tier.NOT_RUN}
        counterfactual: dict[tuple[str, str], checks.Counterfactual] = {}
        if not loaded.problem:
            factors = draw_factors() if any(c.compare == "process" for c in selected) else None
            outcome, failure, tier = run_probes(active, exercise, loaded, selected, devices, limits, factors)
            counterfactual = counterfactual_results(outcome, factors, selected, devices)
    finally:
        if own_worker:
            active.close()
    status = build.run_status(loaded, outcome, failure)
    problem = build.run_problem(status, loaded, outcome, limits, failure)
    source = Code((c.label, c.source) for c in loaded.cells)
    results = compare.results(exercise, selected, devices, outcome, problem, source, counterfactual)
    skipped_cells = build.notebook_cell_problems(outcome)
    if skipped_cells and not all(r.passed for r in results):  # why a function may be missing or stale
        problem = f"{problem} {skipped_cells}" if problem else skipped_cells
    return build.report(
        exercise, loaded.submission, results, status=status, devices=tuple(devices), sandbox=tier, limits=limits,
        error=problem, duration_s=round(time.monotonic() - started, 3),
        output=labelled_output(outcome, selected, devices, Path(loaded.submission.path).name),
        hidden_output=outcome.hidden_output if outcome else "",
        cell_errors=tuple(build.notebook_cell_errors(outcome)),
        hidden_pending=0.0 if any(c.visibility == "hidden" for c in selected) else exercise.hidden_points,
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
    seconds = exercise.reference_seconds()
    calls = [Invocation(i["key"], i["probe"], i["args"],
                        call_budget(limits, seconds[i["key"]]) if i["key"] in seconds else None)
             for i in exercise.invocations(selected)]
    job = Job(
        exercise=exercise.id,
        module_name=exercise.id,
        probe_source=exercise.probe_source,
        cells=tuple(Cell(c.label, c.source) for c in loaded.cells),
        forgiving_cells=loaded.submission.kind == "ipynb",
        invocations=tuple(i for i in calls if i.key not in hidden),
        hidden_invocations=tuple(i for i in calls if i.key in hidden),
        devices=tuple(devices),
        limits=limits,
        call_budget_s=call_budget(limits),
    )
    if perturbed and factors:
        job = replace(job, counterfactual=Perturbed(factors[0], factors[1], Invocation.many(
                          i for i in perturbed if i["key"] not in hidden)),
                      hidden_counterfactual=Invocation.many(i for i in perturbed if i["key"] in hidden))
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
                           selected: tuple[Any, ...], devices: list[str],
                           ) -> dict[tuple[str, str], checks.Counterfactual]:
    """Per (process check's call, device), what its counterfactual call returned, with the factors it ran at."""
    if factors is None:
        return {}
    received = {(r.key[len(COUNTERFACTUAL):], r.device): r for r in (outcome.counterfactual if outcome else ())
                if isinstance(r, Result)}
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
                   counterfactual=tuple(m for m in outcome.messages if isinstance(m, Result) and counterfactual(m)))


def labelled_output(outcome: Outcome | None, selected: tuple[Any, ...], devices: list[str],
                    label: str = "your file") -> str:
    """What the submission printed in view, each part under the check that printed it.

    The harness sends each result's output offsets: they are the child's word, so they only ever cut the
    visible output into sections (never reach the hidden output), and where they do not add up the output is
    shown whole, unlabelled."""
    if outcome is None:
        return ""
    raw = outcome.output_raw
    names: dict[str, str] = {}
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


