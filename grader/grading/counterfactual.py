"""The process checks' evidence by intervention: a second, counterfactual run of a process check's call with
autograd's gradients or the optimizer's rate scaled (harness, probing.perturb), and whether its history responds
as a loop using the mechanism does (`counterfactual_response`). process.compare_process asks it last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from grader.course.exercises import CheckSpec, Exercise
from grader.grading import diagnose, mistakes, update_rules
from grader.grading.tolerances import Tolerance, _close


@dataclass(frozen=True)
class Counterfactual:
    """A process check's call run once more at the end of the job, for its first epochs (COUNTERFACTUAL_EPOCHS),
    with the mechanism perturbed: autograd's
    gradients scaled by `gradient`, every optimizer step's learning rate by `rate` (factors the parent drew for
    that run). `fields` is what that call returned (None: nothing)."""

    gradient: float
    rate: float
    fields: dict[str, Any] | None


# A counterfactual call runs this many epochs at most: a loop's response to the perturbation shows from its
# first update on, and the call costs a few epochs instead of the whole run (issue 22: within 1.25x).
COUNTERFACTUAL_EPOCHS = 6


def counterfactual_args(args: dict[str, Any]) -> dict[str, Any]:
    """A process check's call's arguments for its counterfactual call: its first epochs only."""
    if not isinstance(args.get("n_iters"), int):
        return args
    return {**args, "n_iters": min(args["n_iters"], COUNTERFACTUAL_EPOCHS)}


# Which perturbations a run using the mechanism responds to: autograd scales the step by `gradient` (and by
# `rate` too where the step is an optimizer's); an optimizer's step scales it by `rate` (and by `gradient` too
# where the gradient it applies is autograd's).
RESPONSES = {"backward": ("gradient", "both"), "optimizer": ("rate", "both")}


class Response(NamedTuple):
    """Why the counterfactual run does not show the mechanism at work. `evidence`: it shows that the history does
    not come from it (the run did not respond at all), which names the mistake; else the check earns nothing,
    as unverified, but no diagnosis is given (a run that failed, or responded otherwise than expected)."""

    reason: str
    evidence: bool


MECHANISMS = {"backward": "the gradients autograd returns", "optimizer": "the optimizer's learning rate"}


def counterfactual_response(exercise: Exercise, check: CheckSpec, observed: dict[str, Any],
                            reference: dict[str, Any], tol: Tolerance,
                            counterfactual: Counterfactual | None) -> Response | None:
    """Why the counterfactual run did not respond as a run using the mechanism would (None: it did).

    The normal run is the reference's or a cataloged mistake's (compare_process has made sure); the same loop,
    for its first COUNTERFACTUAL_EPOCHS epochs, with autograd's gradients scaled by g and each step's rate by r,
    takes steps scaled by g, r or g·r: its
    history is that loop's float64 simulation at a learning rate scaled so. The factor that fits best must be
    one the rule's mechanism gives, and fit far better than no response at all. A loop that computes its
    gradient by hand, or updates by hand, keeps its steps: it follows the unscaled run."""
    perturbed = MECHANISMS[check.require or ""]
    if counterfactual is None or not isinstance(counterfactual.fields, dict):
        return Response(f"the second run, with {perturbed} changed, gave no history to compare", evidence=False)
    problem = diagnose.problem_for(check, observed)
    if problem is None:
        return None  # nothing to simulate: the ties by value above are the evidence
    # The columns that show the normal run epoch by epoch must show the second run too: a history that holds one
    # live tensor only in the second run (it can tell that run apart) shows nothing there.
    shown = tuple(name for name in ("loss", "w") if isinstance(observed.get(name), list)
                  and isinstance(reference.get(name), list) and observed.get(f"aliased_{name}") is not True)
    fields = tuple(name for name in shown if isinstance(counterfactual.fields.get(name), list)
                   and counterfactual.fields.get(f"aliased_{name}") is not True)
    if not shown or fields != shown:
        return Response(f"the second run, with {perturbed} changed, did not show its history epoch by epoch as the "
                        "first did", evidence=False)
    simulate = _replay(problem, check, observed, reference, fields, tol)
    if simulate is None:
        return Response(f"the grader cannot replay your loop to check its second run, with {perturbed} changed",
                        evidence=False)
    scaled = {"none": (1.0, 1.0), "gradient": (counterfactual.gradient, 1.0), "rate": (1.0, counterfactual.rate),
              "both": (counterfactual.gradient, counterfactual.rate)}
    epochs = int(counterfactual_args(check.args).get("n_iters", problem.n_iters))
    runs = {name: simulate(gradient, rate, epochs) for name, (gradient, rate) in scaled.items()}
    fit = {name: min(mistakes.fields_deviation(counterfactual.fields, run, fields) for run in found)
           for name, found in runs.items()}
    good = RESPONSES[check.require or ""]
    bad = [name for name in scaled if name not in good]
    if min(fit[name] for name in good) <= mistakes.MATCH and all(fit[name] > mistakes.MATCH for name in bad):
        return None
    if any(_same_runs(runs[g], runs[b], fields) for g in good for b in bad):
        # the rule the loop follows hides the perturbation (Adam's steps do not scale with the gradient)
        return Response(f"a second run with {perturbed} changed cannot show whether your loop uses it: under "
                        "the update rule it follows, the change makes no difference the grader could see",
                        evidence=False)
    if min(fit, key=lambda name: fit[name]) == "none" or fit["none"] <= mistakes.MATCH:
        return Response(f"in a second run where the grader changed {perturbed}, your history did not change: the "
                        f"{'gradient' if check.require == 'backward' else 'update'} it follows is not "
                        f"{'autograd' if check.require == 'backward' else 'the optimizer'}'s", evidence=True)
    return Response(f"in a second run where the grader changed {perturbed}, your history did not respond as a run "
                    "using it does", evidence=False)


def _replay(problem: mistakes.Problem, check: CheckSpec, observed: dict[str, Any], reference: dict[str, Any],
            fields: tuple[str, ...], tol: Tolerance) -> update_rules.Replay | None:
    """The loop the normal run follows, as a simulation at scaled gradients and rates: the reference's, a
    cataloged mistake's, or another update rule's (update_rules.replay). None: it follows none of them."""
    mistake: mistakes.Mistake | None = None
    if all(_close(observed.get(name), reference[name], tol) for name in fields):
        mistake = mistakes.Mistake()
    else:
        found = mistakes.matches(problem, observed, fields)
        mistake = found[0][0].mistake if found else None
    if mistake is None:
        return update_rules.replay(problem, observed, fields)
    chosen = mistake

    def simulate(gradient: float, rate: float, epochs: int) -> list[mistakes.Trajectory]:
        # the loops of the catalog step linearly in both: a scaled gradient or rate scales the step alike
        return [mistakes.simulate(problem.with_args(learning_rate=problem.learning_rate * gradient * rate,
                                                    n_iters=epochs), chosen)]
    return simulate


def _same_runs(first: list[mistakes.Trajectory], second: list[mistakes.Trajectory], fields: tuple[str, ...]) -> bool:
    """Whether two simulated responses look alike in the compared columns (the intervention cannot tell them)."""
    def as_fields(run: mistakes.Trajectory) -> dict[str, Any]:
        return {"loss": run.loss.tolist(), **({"w": run.w.tolist()} if run.w is not None else {})}
    return any(mistakes.fields_deviation(as_fields(a), b, fields) <= mistakes.MATCH for a in first for b in second)
