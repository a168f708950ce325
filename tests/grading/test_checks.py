"""checks.py (comparisons with the references) and mistakes.py (the simulations diagnoses are matched against)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from grader.course import exercises
from grader.course.exercises import CheckSpec
from grader.grading import checks, diagnose, mistakes
from grader.model.report import Status
from grader.sandbox.protocol import Result

EX03 = exercises.load("ex03")
TOL = checks.Tolerance(rtol=1e-4, atol=1e-5)


def spec(probe: str = "train", compare: str = "trajectory", fields: tuple[str, ...] = ("loss", "w"),
         **args) -> CheckSpec:
    return CheckSpec(name=f"{probe} check", probe=probe, args=args, compare=compare, points=2,
                     visibility="visible", fields=fields)


def test_a_value_within_tolerance_passes_and_one_outside_names_the_index():
    check = spec("forward", "value", ("value",))
    reference = {"value": [1.0, 2.0, 3.0]}
    assert checks.compare_value(check, {"value": [1.0, 2.0 + 1e-5, 3.0]}, reference, TOL, True).passed
    verdict = checks.compare_value(check, {"value": [1.0, 2.0, 3.1]}, reference, TOL, True)
    assert not verdict.passed and "index (2,)" in verdict.message and "1 of 3" in verdict.message


def test_a_trajectory_failure_names_the_first_diverging_epoch():
    check = spec()
    reference = {"loss": [30.0, 16.8, 9.4], "w": [0.3, 0.555, 0.77]}
    observed = {"loss": [30.0, 16.8, 9.0], "w": [0.3, 0.555, 0.77]}
    verdict = checks.compare_trajectory(check, observed, reference, TOL, reveal=True)
    assert not verdict.passed and verdict.first_divergent_epoch == 3 and "loss expected 9.4" in verdict.message


def test_hidden_trajectories_do_not_reveal_the_expected_value():
    reference = {"loss": [30.0], "w": [0.3]}
    verdict = checks.compare_trajectory(spec(), {"loss": [31.0], "w": [0.3]}, reference, TOL, reveal=False)
    assert "30" not in verdict.message.split("got")[0]


def test_a_process_check_without_backward_calls_names_no_autograd():
    check = CheckSpec(name="p", probe="train", args={"n_iters": 2, "w": 0.0, "learning_rate": 0.1},
                      compare="process", points=1, visibility="visible", require="backward")
    reference = {"w": [0.3, 0.555], "loss": [30.0, 21.675], "backward_calls": 2}
    verdict, code = checks.compare_process(check, {"backward_calls": 0}, reference, TOL)
    assert not verdict.passed and code == "no-autograd"
    # Each backward() reached a leaf holding w at the start of its epoch (0.0, then 0.3) and put there the
    # gradient of the update that followed: 0.3 = 0.0 - 0.1 × -3.0, 0.555 = 0.3 - 0.1 × -2.55.
    genuine = {**reference, "backward_leaves": [[[0.0, -3.0]], [[0.3, -2.55]]]}
    verdict, code = checks.compare_process(check, genuine, reference, TOL)
    assert verdict.passed and code is None
    # The same counts on a dummy tensor that never holds w: no credit, and the process is named.
    dummy = {**reference, "backward_leaves": [[[1.0, 1.0]], [[1.0, 1.0]]]}
    verdict, code = checks.compare_process(check, dummy, reference, TOL)
    assert not verdict.passed and code == "no-autograd" and "gave the gradient" in verdict.message
    # A lone leaf holding w's value whose gradient is not the update's (a hand-written gradient beside it).
    lone = {**reference, "backward_leaves": [[[0.0, 1.0]], [[0.3, 1.0]]]}
    verdict, code = checks.compare_process(check, lone, reference, TOL)
    assert not verdict.passed and code == "no-autograd"
    # torch.autograd.grad counts as autograd too.
    through_grad = {**genuine, "backward_calls": 0, "autograd_grad_calls": 2}
    assert checks.compare_process(check, through_grad, reference, TOL)[0].passed


def test_process_counts_earn_nothing_without_the_run_they_belong_to():
    # Counts alone could be forged over the channel; they only count beside a matching trajectory.
    check = CheckSpec(name="p", probe="train", args={"n_iters": 2, "learning_rate": 0.1}, compare="process",
                      points=1, visibility="visible", require="backward")
    reference = {"w": [0.3, 0.555], "loss": [30.0, 21.675], "backward_calls": 2}
    forged = {"backward_calls": 2, "w": [0.1, 0.2], "loss": [30.0, 29.0],
              "backward_leaves": [[[0.1, -1.0]], [[0.2, -1.0]]]}
    verdict, code = checks.compare_process(check, forged, reference, TOL)
    assert not verdict.passed and code is None and "fix the training checks first" in verdict.message
    verdict, _ = checks.compare_process(check, forged, reference, TOL, known_mistake=lambda: True)
    assert verdict.passed  # a recognised mistake costs its own check only
    verdict, _ = checks.compare_process(check, {"backward_calls": 2}, reference, TOL)
    assert not verdict.passed
    # A history that never trains earns no process credit, beside a cataloged mistake or not.
    frozen = {**forged, "w": [0.0, 0.0], "loss": [30.0, 30.0], "backward_leaves": [[[0.0, 0.0]], [[0.0, 0.0]]]}
    verdict, _ = checks.compare_process(check, frozen, reference, TOL, known_mistake=lambda: True)
    assert not verdict.passed and "no training" in verdict.message


def run_of(mistake: mistakes.Mistake, **args) -> dict[str, list[float]]:
    a = {"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0], "w": 0.0, "learning_rate": 0.01, "n_iters": 12,
         **args}
    run = mistakes.simulate(mistakes.Problem.scalar(a["x"], a["y"], a["w"], a["learning_rate"], a["n_iters"]),
                            mistake)
    return {"loss": run.loss.tolist(), "w": run.w.tolist()}


def test_evaluate_passes_the_other_checks_answers_to_the_diagnosis():
    notebook = spec(x=[1.0, 2.0, 3.0, 4.0], y=[2.0, 4.0, 6.0, 8.0], w=0.0, learning_rate=0.01, n_iters=12)
    other = spec(x=[1.0, 2.0, 3.0, 4.0], y=[5.0, 10.0, 15.0, 20.0], w=0.0, learning_rate=0.01, n_iters=12)
    notebook_run = run_of(mistakes.Mistake())
    reference = {"fields": run_of(mistakes.Mistake(), y=[5.0, 10.0, 15.0, 20.0])}
    observed = Result("k", "cpu", True, notebook_run, None, None)  # trained on the notebook's Y whatever y was passed
    peers = (diagnose.Peer(notebook, notebook_run, notebook_run),
             diagnose.Peer(other, notebook_run, reference["fields"]))
    result = checks.evaluate(EX03, other, observed, reference, "cpu", None, False, peers)
    assert result.status is Status.FAILED and result.diagnosis == "ignores-arguments"
    alone = checks.evaluate(EX03, other, observed, reference, "cpu", None, False)
    assert alone.diagnosis != "ignores-arguments"


def test_a_passing_check_never_carries_a_diagnosis():
    check = spec(x=[1.0, 2.0, 3.0, 4.0], y=[2.0, 4.0, 6.0, 8.0], w=0.0, learning_rate=0.01, n_iters=12)
    reference = {"fields": run_of(mistakes.Mistake())}
    observed = Result("k", "cpu", True, run_of(mistakes.Mistake()), None, None)
    result = checks.evaluate(EX03, check, observed, reference, "cpu",
                             None, False)
    assert result.passed and result.diagnosis is None


def test_the_correct_simulation_reproduces_the_notebook_numbers():
    run = run_of(mistakes.Mistake(), n_iters=2)
    assert run["loss"] == pytest.approx([30.0, 21.675]) and run["w"] == pytest.approx([0.3, 0.555])


def test_accumulated_gradients_give_the_hints_second_epoch():
    # hints.md for ex03: "epoch 2 gives w = 0.855 instead of 0.555" when w.grad is never zeroed
    assert run_of(mistakes.Mistake(accumulate=True), n_iters=2)["w"] == pytest.approx([0.3, 0.855])


def test_step_before_backward_skips_the_first_step_and_then_lags_one_epoch():
    delayed = run_of(mistakes.Mistake(delay=True), n_iters=3)["w"]
    correct = run_of(mistakes.Mistake(), n_iters=2)["w"]
    assert delayed[0] == 0.0 and delayed[1] == pytest.approx(correct[0])


def test_the_summed_gradient_of_the_notebooks_moves_w_to_1_2_first():
    assert run_of(mistakes.Mistake(scale=4.0), n_iters=1)["w"] == pytest.approx([1.2])


def test_deviation_is_relative_and_stops_where_the_simulation_overflows():
    assert mistakes.deviation([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert mistakes.deviation([1.0, 2.02], [1.0, 2.0]) == pytest.approx(0.02 / 2.002, rel=1e-3)
    assert mistakes.deviation([1.0, np.inf], [1.0, 1e40]) == 0.0
    assert mistakes.deviation([1.0], [1.0, 2.0]) == float("inf")


def test_a_formula_loss_is_simulated_with_its_exact_derivative():
    problem = mistakes.Problem.of_function(diagnose.formula("torch.sin(w) + 0.1*w**2"), -1.0, 0.1, 2)
    run = mistakes.simulate(problem)
    expected_grad = np.cos(-1.0) + 0.2 * -1.0
    assert run.grad[0] == pytest.approx(expected_grad, rel=1e-12)
    assert run.w[0] == pytest.approx(-1.0 - 0.1 * expected_grad, rel=1e-12)


@given(st.lists(st.floats(min_value=0, max_value=1e300, allow_nan=False), min_size=1, max_size=120))
def test_the_fast_median_is_numpys(values):
    from grader.grading.mistakes import _median

    assert _median(np.asarray(values)) == float(np.median(np.asarray(values)))


PROCESS_ARGS = {"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0], "w": 0.0, "learning_rate": 0.01, "n_iters": 12}


@pytest.mark.parametrize("require, responds", [("backward", "gradient"), ("backward", "both"),
                                               ("optimizer", "rate"), ("optimizer", "both")])
def test_a_counterfactual_run_that_follows_the_mechanism_is_credited(require, responds):
    check = CheckSpec(name="p", probe="train", args=PROCESS_ARGS, compare="process", points=1,
                      visibility="visible", require=require)
    normal = run_of(mistakes.Mistake())
    factor = {"gradient": 0.45, "rate": 0.65, "both": 0.45 * 0.65}[responds]
    perturbed = checks.Counterfactual(0.45, 0.65, run_of(mistakes.Mistake(), learning_rate=0.01 * factor,
                                                                n_iters=checks.COUNTERFACTUAL_EPOCHS))
    assert checks.counterfactual_response(exercises.load("ex03"), check, normal, normal, TOL, perturbed) is None


@pytest.mark.parametrize("require, ignores", [("backward", "rate"), ("backward", "none"), ("optimizer", "gradient"),
                                              ("optimizer", "none")])
def test_a_counterfactual_run_that_ignores_the_mechanism_is_not(require, ignores):
    check = CheckSpec(name="p", probe="train", args=PROCESS_ARGS, compare="process", points=1,
                      visibility="visible", require=require)
    normal = run_of(mistakes.Mistake())
    factor = {"gradient": 0.45, "rate": 0.65, "none": 1.0}[ignores]
    perturbed = checks.Counterfactual(0.45, 0.65, run_of(mistakes.Mistake(), learning_rate=0.01 * factor,
                                                                n_iters=checks.COUNTERFACTUAL_EPOCHS))
    why = checks.counterfactual_response(exercises.load("ex03"), check, normal, normal, TOL, perturbed)
    assert why is not None and "second run" in why.reason
    # Only a history that did not change at all is evidence that names the mistake (no-autograd, no-optimizer).
    assert why.evidence == (ignores == "none")
    # No counterfactual history at all is no evidence for the mechanism either, and none against it: the check
    # earns nothing, with no diagnosis.
    missing = checks.counterfactual_response(exercises.load("ex03"), check, normal, normal, TOL,
                                             checks.Counterfactual(0.45, 0.65, None))
    assert missing is not None and not missing.evidence


def test_a_cataloged_mistake_keeps_its_credit_when_its_counterfactual_responds():
    check = CheckSpec(name="p", probe="train", args=PROCESS_ARGS, compare="process", points=1,
                      visibility="visible", require="backward")
    sign = mistakes.Mistake(scale=-1.0)
    perturbed = checks.Counterfactual(0.45, 0.65, run_of(sign, learning_rate=0.01 * 0.45,
                                                          n_iters=checks.COUNTERFACTUAL_EPOCHS))
    reference = run_of(mistakes.Mistake())
    assert checks.counterfactual_response(exercises.load("ex03"), check, run_of(sign), reference, TOL,
                                          perturbed) is None


def test_a_model_moved_between_steps_by_hand_earns_no_optimizer_credit():
    check = CheckSpec(name="p", probe="train", args={"n_iters": 2}, compare="process", points=1,
                      visibility="visible", require="optimizer")
    start = {"initial_weight": [[0.5]], "initial_bias": [0.1], "weight": [[0.7]], "bias": [0.2]}
    honest = [[[0.5, 0.1], [0.6, 0.15]], [[0.6, 0.15], [0.7, 0.2]]]
    assert checks._process_evidence(check, {**start, "steps_holding_model": 2, "model_steps": honest},
                                    None, TOL, 2) is None
    idle = [[[0.5, 0.1], [0.5, 0.1]], [[0.6, 0.15], [0.6, 0.15]]]  # lr=0 steps, the update by hand between
    why = checks._process_evidence(check, {**start, "steps_holding_model": 2, "model_steps": idle}, None, TOL, 2)
    assert why is not None and "without the optimizer" in why
