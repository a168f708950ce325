"""The child's side of a grading run: load the submission, run each probe, send plain numbers back.

This module runs inside the sandboxed child, after the zygote has forked it and `isolation` has closed
the doors. It never sees a reference value. Every student exception becomes one result message here,
in `run_invocation`, and nowhere else.
"""

from __future__ import annotations

import linecache
import os
import random
import sys
import time
import traceback
import types
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from grader.model.job import HiddenPart, Invocation, Job
from grader.sandbox.budget import CallBudgetExceeded, call_budget, stopped_functions
from grader.sandbox.channel import encode
from grader.sandbox.messages import COUNTERFACTUAL, ChildError, Done, LoadError, Message, Phase, Result
from grader.sandbox.probing import Context, ProbeFailure, perturb

MAX_TRACEBACK_CHARS = 3000
FIRST_CALL_FACTOR = 4  # the budget of a device's first probe call, in budgets


class Channel:
    """The child's end of the dedicated result pipe."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, message: Message) -> None:
        data = encode(message.to_wire())
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


def describe_exception(exc: BaseException, student_files: set[str], cell: str = "") -> ChildError:
    """The exception as a student should read it: their own frames only, then the error line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in student_files]
    lines = [f'  {f.filename}, line {f.lineno}, in {f.name}\n    {(f.line or "").strip()}' for f in frames]
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    where = None
    if frames:
        last = frames[-1]
        where = f"{last.filename}, line {last.lineno}, in {last.name}: {(last.line or '').strip()}"
    elif isinstance(exc, SyntaxError) and exc.filename in student_files:
        where = f"{exc.filename}, line {exc.lineno}: {(exc.text or '').strip()}"
    evidence = getattr(exc, "__grader_evidence__", None)  # what a probe saw as it raised (probing.py)
    return ChildError(
        kind="not-implemented" if isinstance(exc, NotImplementedError) else "exception",
        type=type(exc).__name__,
        message=text[:1000],
        where=where,
        traceback=("\n".join(lines) + ("\n" if lines else "") + text)[-MAX_TRACEBACK_CHARS:],
        cell=cell,
        # plain scalars only: a student can set this attribute too
        evidence={str(k)[:40]: v if not isinstance(v, str) else v[:200]
                  for k, v in list(evidence.items())[:8] if isinstance(v, (str, bool, int, float))}
        if isinstance(evidence, dict) else {},
    )


def load_submission(job: Job) -> tuple[types.ModuleType, set[str], list[ChildError]]:
    """Execute the submission's cells in order in a fresh module.

    A .py file is one cell: an exception there is a load error (raised). A notebook keeps going after a
    failing cell, as a forgiving "run all" would, and reports each failing cell.
    """
    module = types.ModuleType(job.module_name)
    module.__file__ = os.path.join(os.getcwd(), job.module_name + ".py")
    sys.modules[job.module_name] = module
    labels = {cell.label for cell in job.cells}
    cell_errors = []
    for cell in job.cells:
        source = cell.source
        linecache.cache[cell.label] = (len(source), None, source.splitlines(True), cell.label)
        try:  # compiled inside: a notebook's cell with a syntax error is skipped and reported like any other
            # Running the student's code is this child's whole purpose; the sandbox around it is the defence.
            exec(compile(source, cell.label, "exec", dont_inherit=True), module.__dict__)  # noqa: S102
        except BaseException as exc:  # a student's SystemExit is data too
            if not job.forgiving_cells:
                raise
            cell_errors.append(describe_exception(exc, labels, cell=cell.label))
    return module, labels, cell_errors


def reset_state() -> None:
    """The same seeds before every probe, so a run never depends on the order of checks."""
    random.seed(0)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)
        lock_tf32_off(torch)


def lock_tf32_off(torch: Any) -> None:
    """Turn TF32 off and make every switch that would turn it back on do nothing, for this child's life.

    TF32 would change float32 matmul results on Ampere+ GPUs (ex05's nn.Linear); the references are full
    float32, so a submission must not be able to enable it, not even in the middle of `train`.
    """
    native = torch._C
    if getattr(native, "_grader_tf32_locked", False):
        return
    native._set_cublas_allow_tf32(False)
    native._set_cudnn_allow_tf32(False)
    native._set_float32_matmul_precision("highest")
    native._set_cublas_allow_tf32 = lambda allow: None
    native._set_float32_matmul_precision = lambda precision: None
    set_fp32_precision = native._set_fp32_precision_setter
    native._set_fp32_precision_setter = lambda backend, op, value: set_fp32_precision(
        backend, op, "ieee" if str(value).lower() == "tf32" else value)
    # cudnn.allow_tf32 is a property that captured the native setter when torch was imported.
    type(torch.backends.cudnn).allow_tf32 = property(lambda self: False, lambda self, value: None)
    native._grader_tf32_locked = True


def run_invocation(invocation: Invocation, probes: types.ModuleType, ctx: Context,
                   student_files: set[str], budget: float | None = None) -> Result:
    reply = Result(key=invocation.key, device=ctx.device, ok=False, fields=None, error=None)
    probe = getattr(probes, invocation.probe)
    reset_state()
    try:
        with call_budget(budget):
            fields = probe(ctx, **invocation.args)
    except CallBudgetExceeded as exc:
        stopped = stopped_functions(exc, student_files)
        ctx.runaway.update(stopped)
        name = stopped[0] if stopped else invocation.probe
        return replace(reply, error=ChildError(
            kind="runaway", name=name[:100], where=describe_exception(exc, student_files).where,
            message=f"`{name}` did not return within this check's budget of {budget:g} s, so it was stopped"))
    except ProbeFailure as failure:
        name = str(failure.name)[:100] if failure.name else None
        return replace(reply, error=ChildError(kind=failure.kind, message=failure.message, name=name))
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are graded too
        return replace(reply, error=describe_exception(exc, student_files))
    return replace(reply, ok=True, fields=fields)




def output_offset() -> int | None:
    """Where the output file stands (its size so far), after flushing: per-check labels for the parent."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        return os.fstat(1).st_size
    except (OSError, ValueError):
        return None


def run(job: Job, channel: Channel, hidden: Callable[[], HiddenPart] | None = None) -> None:
    """Load the submission, run every invocation on every device, and say done.

    With `job.hidden_follows`, the hidden checks' invocations are not in the job: once the visible ones
    are done the harness says so (PHASE) and `hidden()` reads them from the job pipe, which the parent fills
    only after it has set aside everything printed so far (so what is printed from then on, with the
    hidden inputs in hand, can only land in the instructor's hidden output)."""
    probes = types.ModuleType("probe")
    exec(compile(job.probe_source, "probe.py", "exec"), probes.__dict__)  # noqa: S102 - the exercise's own probe
    student_files = {cell.label for cell in job.cells}
    try:
        module, student_files, cell_errors = load_submission(job)
    except BaseException as exc:  # noqa: BLE001
        channel.send(LoadError(describe_exception(exc, student_files)))
        return
    for error in cell_errors:
        channel.send(LoadError(error, continued=True))
    contexts = [Context(module, device) for device in job.devices]
    budget = job.call_budget_s
    _run_all(job.invocations, probes, contexts, student_files, channel, budget)
    later = HiddenPart()
    if job.hidden_follows and hidden is not None:
        channel.send(Phase())
        later = hidden()
        _run_all(later.invocations, probes, contexts, student_files, channel, budget)
    counterfactual = job.counterfactual
    if counterfactual is not None:  # grading.COUNTERFACTUAL: the process checks' calls once more, perturbed
        perturb(counterfactual.gradient, counterfactual.rate)
        for ctx in contexts:
            ctx.history_prefix = True
        calls = counterfactual.invocations + later.counterfactual_invocations
        _run_all([replace(call, key=COUNTERFACTUAL + call.key) for call in calls], probes, contexts,
                 student_files, channel, budget)
    channel.send(Done())


def _run_all(invocations: Sequence[Invocation], probes: types.ModuleType, contexts: list[Context],
             student_files: set[str], channel: Channel, budget: float | None = None) -> None:
    for ctx in contexts:
        for invocation in invocations:
            start = output_offset()
            # the call's own budget (its reference's recorded time) where it has one; a device's first call also
            # pays for torch's lazy setup (a CUDA context takes seconds)
            own = invocation.budget_s if invocation.budget_s and invocation.budget_s > 0 else budget
            allowed = own * FIRST_CALL_FACTOR if own and not ctx.calls_made else own
            ctx.calls_made += 1
            began = time.perf_counter()
            reply = run_invocation(invocation, probes, ctx, student_files, allowed)
            reply = replace(reply, elapsed_s=time.perf_counter() - began)
            end = output_offset()
            if start is not None and end is not None:
                reply = replace(reply, output_at=(float(start), float(end)))
            channel.send(reply)
