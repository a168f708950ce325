"""The diagnosis codes: one registry that the report schema, the explanations, the hints, the docs and the tests read.

Each code is a member of `DiagnosisCode` (a str enum, so reports carry the same strings): its value, the schema
version that introduced it, and its one-line meaning (docs/diagnoses.md is generated from it). Adding a
code is adding a member here, its explanation in diagnose.py and the schema's enum entry (tests/model/test_codes.py
holds them all to this list), and a submission in tests/submissions/ that makes it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class DiagnosisCode(StrEnum):
    """A stable code naming the mistake behind a failed check."""

    since: str  # the report schema version that introduced it
    meaning: str  # one line: the mistake it names

    def __new__(cls, value: str, since: str, meaning: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.since = since
        member.meaning = meaning
        return member

    GRADIENT_NOT_AVERAGED = ("gradient-not-averaged", "1.0",
        "gradient N times too large: summed over samples instead of averaged (the notebooks' `np.dot(...).mean()`)")
    GRADIENT_MISSING_FACTOR_2 = ("gradient-missing-factor-2", "1.0", "gradient half the true one")
    GRADIENT_SIGN = ("gradient-sign", "1.0", "the update climbs the gradient")
    GRAD_NOT_ZEROED = ("grad-not-zeroed", "1.0", "gradients accumulate across epochs (no `zero_()` / `zero_grad()`)")
    LOSS_AFTER_UPDATE = ("loss-after-update", "1.0",
        "the loss recorded after the update instead of before (off by one epoch)")
    STEP_BEFORE_BACKWARD = ("step-before-backward", "1.0", "`optimizer.step()` runs before `loss.backward()`")
    SHAPE_BROADCAST = ("shape-broadcast", "1.0",
        "prediction `(n, 1)` against target `(n,)`: MSE silently broadcasts to `(n, n)`")
    IGNORES_ARGUMENTS = ("ignores-arguments", "1.0", "the function uses globals or constants instead of its arguments")
    NO_AUTOGRAD = ("no-autograd", "1.0", "the gradient was not computed by autograd where the exercise requires it")
    NO_OPTIMIZER = ("no-optimizer", "1.0", "the update bypasses `torch.optim` where the exercise requires it")
    DEVICE_MISMATCH = ("device-mismatch", "1.0", "tensors created on the CPU while the inputs live on the GPU")
    NOT_IMPLEMENTED = ("not-implemented", "1.0", "the stub is untouched")
    W_BEFORE_UPDATE = ("w-before-update", "1.1",
        "the history records w before the epoch's update instead of after it (off by one epoch)")
    HISTORY_ALIASES_TENSOR = ("history-aliases-tensor", "1.1",
        "the history holds the live parameter tensor itself, so every entry shows its final value")
    REBOUND_PARAMETER = ("rebound-parameter", "1.1",
        ("the parameter is replaced by a new tensor (`w = w - lr * w.grad`) instead of updated in place, so "
        "`.grad` is lost or it no longer requires grad"))
    ARGUMENT_ORDER = ("argument-order", "1.1",
        "a function takes the exercise's arguments in another order than its signature")
    MODULE_NOT_INITIALISED = ("module-not-initialised", "1.1",
        "an `nn.Module` subclass whose `__init__` does not call `super().__init__()`")
    WRONG_OPTIMIZER = ("wrong-optimizer", "1.2",
        ("the update follows another rule than the plain gradient step the exercise asks for (momentum, "
         "Adam, ...); the message names the rule"))
    PER_SAMPLE_UPDATES = ("per-sample-updates", "1.2",
        ("w is updated once per sample (or per mini-batch) inside an epoch instead of once per epoch on the "
         "whole batch"))


CODES: tuple[DiagnosisCode, ...] = tuple(DiagnosisCode)  # in the order of the schema's enum and the docs' table
