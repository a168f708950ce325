"""How close is close enough: a check's tolerance, a comparison's verdict, and the numbers they are applied to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.course.exercises import CheckSpec, Exercise


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float  # relative to the reference's scale (its largest magnitude, at least 1)

    def absolute(self, reference: np.ndarray) -> float:
        finite = reference[np.isfinite(reference)]
        scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
        return self.atol * scale

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}×scale"


@dataclass(frozen=True)
class Verdict:
    """A comparison's outcome before it becomes a CheckResult."""

    passed: bool
    message: str
    first_divergent_epoch: int | None = None


def tolerance_for(exercise: Exercise, check: CheckSpec) -> Tolerance:
    return Tolerance(
        rtol=check.rtol if check.rtol is not None else exercise.rtol,
        atol=check.atol if check.atol is not None else exercise.atol,
    )


def fmt(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    return f"{value:.8g}"


def _array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _close(observed: Any, expected: Any, tol: Tolerance) -> bool:
    """Every number of `observed` within tolerance of `expected`, same shape, all finite."""
    try:
        got, want = _array(observed), _array(expected)
    except (TypeError, ValueError):
        return False
    if got.shape != want.shape:
        return False
    return bool(np.all(np.abs(got - want) <= tol.absolute(want) + tol.rtol * np.abs(want)))
