"""The diagnosis corpus (tests/submissions/exNN/*.py, each with its .expected.json) and the detectors' units.

A corpus case is a submission plus its expected outcome:
    {"full_marks": bool,
     "diagnoses": [codes],                  # exactly the codes that appear, over all checks
     "checks": {"name prefix": "code"},     # optional: every check whose name starts so carries the code
     "device": "cuda"}                      # optional: grade on the GPU (skipped without one)
Adding a case is adding the two files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SUBMISSIONS, requires_cuda

from grader.course import exercises
from grader.course.exercises import CheckSpec
from grader.grading import diagnose, mistakes
from grader.model.report import schema as report_schema
from grader.sandbox.protocol import ChildError

CONTRACT_CODES = {
    "gradient-not-averaged", "gradient-missing-factor-2", "gradient-sign", "grad-not-zeroed", "loss-after-update",
    "step-before-backward", "shape-broadcast", "ignores-arguments", "no-autograd", "no-optimizer",
    "device-mismatch", "not-implemented",
    # schema 1.1
    "w-before-update", "history-aliases-tensor", "rebound-parameter", "argument-order", "module-not-initialised",
    # schema 1.2
    "wrong-optimizer", "per-sample-updates",
}
# The corpus, plus each exercise's untouched stub as it ships (no copy to drift from the real one).
CASES = sorted(SUBMISSIONS.glob("ex*/*.py")) + sorted(exercises.course_root().glob("ex*/stub.py"))
STUB_OUTCOME = {"full_marks": False, "diagnoses": ["not-implemented"], "checks": {"": "not-implemented"}}


def expected_outcome(path: Path) -> dict:
    if path.name == "stub.py":
        return STUB_OUTCOME
    return json.loads(path.with_suffix(".expected.json").read_text("utf-8"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_every_case_has_an_expected_outcome_with_known_codes():
    assert CASES
    for path in CASES:
        expected = expected_outcome(path)
        assert set(expected["diagnoses"]) <= CONTRACT_CODES, path
        assert set(expected.get("checks", {}).values()) <= CONTRACT_CODES | {"passed"}, path
        assert expected["full_marks"] == (not expected["diagnoses"] and path.stem.startswith("correct")), path


def test_every_contract_code_is_explained_and_has_a_corpus_case():
    assert set(diagnose.EXPLANATIONS) == CONTRACT_CODES
    enum = report_schema()["properties"]["checks"]["items"]["properties"]["diagnosis"]["enum"]
    assert set(enum) - {None} == CONTRACT_CODES
    covered = set().union(*(expected_outcome(p)["diagnoses"] for p in CASES))
    assert covered == CONTRACT_CODES


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=requires_cuda) if expected_outcome(p).get("device") == "cuda" else p for p in CASES],
    ids=case_id,
)
def test_submission_gets_its_expected_outcome(path, grade_file):
    exercise = path.parent.name
    if exercise not in exercises.exercise_ids():
        pytest.skip(f"{exercise} has no spec yet")
    expected = expected_outcome(path)
    report = grade_file(exercise, path, device=expected.get("device", "cpu"))
    found = {c.diagnosis for c in report.checks if c.diagnosis}
    summary = [(c.name, c.status.value, c.diagnosis) for c in report.checks]
    assert report.full_marks == expected["full_marks"], summary
    assert found == set(expected["diagnoses"]), summary
    for prefix, code in expected.get("checks", {}).items():
        chosen = [c for c in report.checks if c.name.startswith(prefix)]
        assert chosen, f"no check named {prefix!r}"
        for check in chosen:
            assert (check.passed if code == "passed" else check.diagnosis == code), (check.name, summary)
    for check in report.checks:
        assert (check.diagnosis is None) or not check.passed, check.name
        if check.diagnosis:
            assert any(text in check.message for text in diagnose.standard_explanations(check.diagnosis))


@pytest.mark.slow
def test_notebook_gradient_message_corrects_the_autograd_conclusion(grade_file):
    report = grade_file("ex01", SUBMISSIONS / "ex01" / "bug_notebook_npdot.py")
    gradient = next(c for c in report.checks if c.name.startswith("gradient(x, y, y_pred) at w = 0"))
    assert gradient.diagnosis == "gradient-not-averaged"
    assert "N = 4" in gradient.message and "np.dot" in gradient.message
    assert "autograd" in gradient.message and "agrees" in gradient.message


# ---- units: the evidence each detector reads, without a sandbox


def check(probe: str, compare: str = "value", fields: tuple[str, ...] = ("value",), **args) -> CheckSpec:
    return CheckSpec(name=f"{probe} check", probe=probe, args=args, compare=compare, points=1, visibility="visible",
                     fields=fields)


EX03 = exercises.load("ex03")


@pytest.mark.parametrize("message", [
    "RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
    "TypeError: can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor first.",
])
def test_device_errors_are_classified_as_device_mismatch(message):
    found = diagnose.from_error(EX03, check("train"), ChildError(message=message))
    assert found is not None and found.code == "device-mismatch"


def test_an_unrelated_runtime_error_gets_no_diagnosis():
    found = diagnose.from_error(EX03, check("train"), ChildError(message="RuntimeError: boom"))
    assert found is None


def test_a_history_as_long_as_another_checks_n_iters_means_ignored_arguments():
    this = check("train", "trajectory", ("loss", "w"), n_iters=30)
    peer = diagnose.Peer(check("train", "trajectory", ("loss", "w"), n_iters=100), None, None)
    text = "train(...) returned 100 entries for n_iters=30; expected one per epoch."
    assert diagnose.from_error(EX03, this, ChildError(kind="shape", message=text), (peer,)).code == "ignores-arguments"
    assert diagnose.from_error(EX03, this, ChildError(kind="shape", message=text), ()) is None


def train_check(**args) -> CheckSpec:
    return check("train", "trajectory", ("loss", "w"), **args)


NOTEBOOK = {"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0], "w": 0.0, "learning_rate": 0.01, "n_iters": 40}


def history(mistake: mistakes.Mistake, **args) -> dict[str, list[float]]:
    """What a float32 student loop with the mistake would return: the float64 simulation rounded to float32."""
    a = {**NOTEBOOK, **args}
    run = mistakes.simulate(mistakes.Problem.scalar(a["x"], a["y"], a["w"], a["learning_rate"], a["n_iters"]),
                            mistake)
    return {"loss": run.loss.astype(np.float32).tolist(), "w": run.w.astype(np.float32).tolist()}


@pytest.mark.parametrize("mistake, code", [
    (mistakes.Mistake(scale=4.0), "gradient-not-averaged"),
    (mistakes.Mistake(scale=0.5), "gradient-missing-factor-2"),
    (mistakes.Mistake(scale=-1.0), "gradient-sign"),
    (mistakes.Mistake(accumulate=True), "grad-not-zeroed"),
    (mistakes.Mistake(delay=True), "step-before-backward"),
    (mistakes.Mistake(loss_after=True), "loss-after-update"),
    (mistakes.Mistake(broadcast=True), "shape-broadcast"),
])
def test_each_simulated_mistake_is_named_from_its_trajectory(mistake, code):
    reference = history(mistakes.Mistake())
    found = diagnose.from_behaviour(EX03, train_check(**NOTEBOOK), history(mistake), reference)
    assert found is not None and found.code == code


def test_a_trajectory_unlike_any_mistake_gets_no_diagnosis():
    reference = history(mistakes.Mistake())
    wobbly = {"loss": [v * 1.3 for v in reference["loss"]], "w": [v * 0.7 for v in reference["w"]]}
    assert diagnose.from_behaviour(EX03, train_check(**NOTEBOOK), wobbly, reference) is None


def test_parameters_that_never_move_name_step_before_backward_only_when_steps_were_taken():
    reference = history(mistakes.Mistake())
    stuck = history(mistakes.Mistake(frozen=True))
    assert diagnose.from_behaviour(EX03, train_check(**NOTEBOOK), stuck, reference) is None
    with_steps = {**stuck, "event_order": "ZSB" * NOTEBOOK["n_iters"]}
    assert diagnose.from_behaviour(EX03, train_check(**NOTEBOOK), with_steps, reference).code == \
        "step-before-backward"


def test_training_on_another_checks_learning_rate_is_ignored_arguments_not_a_half_gradient():
    this = train_check(**{**NOTEBOOK, "learning_rate": 0.02})
    notebook = train_check(**NOTEBOOK)
    observed_notebook = history(mistakes.Mistake())
    peer = diagnose.Peer(notebook, observed_notebook, observed_notebook)
    observed = history(mistakes.Mistake())  # lr 0.01 used where 0.02 was passed: looks like a half gradient
    found = diagnose.from_behaviour(EX03, this, observed, history(mistakes.Mistake(), learning_rate=0.02),
                                    peers=(peer,))
    assert found is not None and found.code == "ignores-arguments"


def test_a_loss_over_the_broadcast_pairs_is_shape_broadcast():
    y, y_pred = [1.0, 2.0, 4.0], [1.5, 2.5, 3.0]
    broadcast = float(np.mean((np.array(y_pred)[:, None] - np.array(y)[None, :]) ** 2))
    found = diagnose.from_behaviour(EX03, check("loss", y=y, y_pred=y_pred), {"value": broadcast},
                                    {"value": 0.5})
    assert found is not None and found.code == "shape-broadcast"


def test_malformed_fields_name_no_mistake():
    found = diagnose.from_behaviour(EX03, train_check(**NOTEBOOK), {"loss": "x", "w": None},
                                    history(mistakes.Mistake()))
    assert found is None
