"""Naming the mistake behind a check whose probe raised: the student's exception, with the evidence the child sent.

diagnose.py judges behaviour (numbers that ran but did not match); this module judges errors (a wrong device, a
shape sized for another check's arguments, an nn.Module never initialised, a rebound parameter)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from grader.course.exercises import CheckSpec, Exercise
from grader.course.source import Code
from grader.grading.explanations import (  # moved to explanations.py, still named here
    EXPLANATIONS as EXPLANATIONS,
    IGNORES_ARGUMENTS_MODEL as IGNORES_ARGUMENTS_MODEL,
    Diagnosis as Diagnosis,
    make as make,
)
from grader.model.codes import DiagnosisCode
from grader.sandbox.protocol import ChildError


@dataclass(frozen=True)
class Peer:
    """Another check of the same submission on the same device: its arguments, answer and reference."""

    check: CheckSpec
    observed: dict[str, Any] | None  # the fields, when the probe ran without an error
    reference: dict[str, Any] | None


def _for_the_model(exercise: Exercise, check: CheckSpec, found: Diagnosis) -> Diagnosis:
    """ignores-arguments on a check that builds the student's own model speaks of sizes, not data."""
    model = any(name[:1].isupper() for name in exercise.functions)
    if found.code != DiagnosisCode.IGNORES_ARGUMENTS or not model or check.probe in ("train", "trained_parameters"):
        return found
    stock = EXPLANATIONS[DiagnosisCode.IGNORES_ARGUMENTS]
    return replace(found, explanation=found.explanation.replace(stock, IGNORES_ARGUMENTS_MODEL),
                   stock=IGNORES_ARGUMENTS_MODEL if found.stock == stock else found.stock)


def from_error(exercise: Exercise, check: CheckSpec, error: ChildError,
               peers: tuple[Peer, ...] = (), source: Code | None = None) -> Diagnosis | None:
    """The mistake behind a check whose probe raised (the student's exception or a wrong type/shape)."""
    kind, text, evidence = error.kind, error.message, error.evidence
    if kind == "not-implemented":
        return make(DiagnosisCode.NOT_IMPLEMENTED)
    if kind == "exception" and isinstance(evidence.get("rebound"), str):
        return rebound_parameter(exercise, check, evidence["rebound"], source)
    if kind == "exception" and is_uninitialised_module(text):
        return uninitialised_module(exercise, source)
    if is_device_error(text):
        return make(DiagnosisCode.DEVICE_MISMATCH)
    if kind == "shape" and "(n, 1)" in text:
        return make(DiagnosisCode.SHAPE_BROADCAST)
    if kind == "shape" and sized_for_other_arguments(check, text, peers):
        return make(DiagnosisCode.IGNORES_ARGUMENTS, "Your answer has the size that another check's arguments give.")
    if kind == "exception" and mixes_other_arguments(check, text, peers):
        if any(name[:1].isupper() for name in exercise.functions):
            return _for_the_model(exercise, check, make(
                DiagnosisCode.IGNORES_ARGUMENTS,
                "Your model combined this check's data with a layer of another check's size."))
        return make(DiagnosisCode.IGNORES_ARGUMENTS, "Your code combined the arguments with arrays of another size, "
                    "one that only another check's data has: a global variable or a constant.")
    return None


def rebound_parameter(exercise: Exercise, check: CheckSpec, variable: str, source: Code | None) -> Diagnosis:
    """The trained tensor was replaced by a new one (the child saw it no longer a leaf that requires grad)."""
    function = check.probe if check.probe in exercise.functions else "train"
    line = source.rebinding(function, variable) if source else None
    where = f"The cause is {line}." if line else f"The cause is an assignment `{variable} = ...` in your loop."
    text = EXPLANATIONS[DiagnosisCode.REBOUND_PARAMETER]
    return Diagnosis(DiagnosisCode.REBOUND_PARAMETER, f"{where} {text}", cause_first=True, stock=text)


UNINITIALISED_MODULE = re.compile(
    r"before Module\.__init__\(\) call|has no attribute '_(?:modules|parameters|buffers|\w*hooks\w*)'")


def is_uninitialised_module(text: str) -> bool:
    """PyTorch's errors for an nn.Module whose __init__ never called super().__init__()."""
    return bool(UNINITIALISED_MODULE.search(text))


def uninitialised_module(exercise: Exercise, source: Code | None) -> Diagnosis:
    classes = [name for name in exercise.functions if name[:1].isupper()]
    line = next((found for name in classes if source and (found := source.init_without_super(name))), None)
    where = f"Your `__init__` ({line}) never calls `super().__init__()`." if line else ""
    code = DiagnosisCode.MODULE_NOT_INITIALISED
    return Diagnosis(code, f"{where} {EXPLANATIONS[code]}".strip(), cause_first=True, stock=EXPLANATIONS[code])


def missing_name(error: ChildError, source: Code | None) -> str | None:
    """A better message for a function the run did not define, when the source does define it, inside a
    block that did not run (`if torch.cuda.is_available():` on a machine without a GPU, say)."""
    name = error.name
    if error.kind != "missing" or name is None or source is None:
        return None
    guard = source.guard(name)
    if guard is None:
        return None
    return (f"`{name}` is defined in your file only inside a block ({guard}), and that block did not define "
            f"it while grading (the condition was false, or the block stopped early). Define `{name}` at the "
            "top level of the file, outside any if/try/with.")


DEVICE_ERRORS = (
    "Expected all tensors to be on the same device",
    "is on the wrong device",
    "can't convert cuda",
    "Expected object of device type",
    "must be on the same device",
    "not at the same device",
)


def is_device_error(text: str) -> bool:
    """PyTorch's messages for tensors on different devices (or a CUDA tensor sent through NumPy)."""
    return any(marker.lower() in text.lower() for marker in DEVICE_ERRORS)


def sized_for_other_arguments(check: CheckSpec, text: str, peers: tuple[Peer, ...]) -> bool:
    """A vector or history whose length fits another check's arguments but not this one's."""
    match = re.search(r"returned (\d+) entries for n_iters=(\d+)", text)
    if match:
        got = int(match.group(1))
        return any(p.check.args.get("n_iters") == got for p in peers if p.check.probe == check.probe)
    match = re.search(r"has shape \((\d+),\), expected \((\d+),\)", text)
    if match:
        got = int(match.group(1))
        return any(_lengths(p.check.args) & {got} for p in peers if p.check.probe == check.probe) and \
            got not in _lengths(check.args)
    return False


# NumPy's "could not be broadcast together with shapes (6,) (4,)", PyTorch's "The size of tensor a (6) must
# match the size of tensor b (4)" and "mat1 and mat2 shapes cannot be multiplied (4x1 and 3x2)".
SHAPE_MISMATCH = ("could not be broadcast", "must match the size", "cannot be multiplied")


SIZES_IN_ERROR = re.compile(r"\(([\d, x]+(?: and [\dx]+)?)\)")


def mixes_other_arguments(check: CheckSpec, text: str, peers: tuple[Peer, ...]) -> bool:
    """A size mismatch between this check's data and sizes only other checks' data have (globals)."""
    if not any(marker in text for marker in SHAPE_MISMATCH):
        return False
    sizes = {int(n) for group in SIZES_IN_ERROR.findall(text) for n in re.findall(r"\d+", group)}
    own = _sizes(check.args)
    others = set().union(*(_sizes(p.check.args) for p in peers)) if peers else set()
    return bool(sizes & own) and bool((sizes - own) & others)


def _sizes(args: dict[str, Any]) -> set[int]:
    """Every dimension of the check's array arguments."""
    return {int(n) for v in args.values() if isinstance(v, list) for n in np.shape(v)}


def _lengths(args: dict[str, Any]) -> set[int]:
    return {len(v) for v in args.values() if isinstance(v, list)}
