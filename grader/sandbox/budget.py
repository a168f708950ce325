"""A time budget per call, in the child: a runaway call costs only its own check and those that need the
same function, and says which line it was executing when it was stopped.

The parent's whole-run timeout stays the backstop (a loop inside one C call, a student's own SIGALRM
handler). Within it, each probe call runs under an interval timer: SIGALRM raises `CallBudgetExceeded` in
whatever Python frame is executing, so its traceback names the student's line; the timer re-fires every
RE_ARM_S while the call has not returned, so a bare `except:` that swallows it does not keep the loop alive.
The functions on the stopped stack are then refused to later calls (`Context.function`): calling a function
that never returned would cost every later check its whole budget again.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

RE_ARM_S = 0.25  # after the budget, the alarm repeats this often until the call returns


class CallBudgetExceeded(BaseException):
    """Raised in the student's frame when a call runs past its budget (BaseException: `except Exception`
    in the student's loop does not catch it)."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise CallBudgetExceeded()


@contextmanager
def call_budget(seconds: float | None) -> Iterator[None]:
    """Run the body under a per-call budget (no budget when `seconds` is falsy or the platform has no timer)."""
    if not seconds or seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds), RE_ARM_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def stopped_functions(exc: BaseException, student_files: set[str]) -> list[str]:
    """The student's functions on the stack when the budget stopped the call, outermost first."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in student_files]
    names: list[str] = []
    for frame in frames:
        if frame.name not in names and frame.name != "<module>":
            names.append(frame.name)
    return names
