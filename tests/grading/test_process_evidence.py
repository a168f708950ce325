"""Process checks need the process: a backward() or step() beside the training, not the training itself.

Each submission in tests/process_attacks/ gets the right numbers some other way (a hand-written gradient,
a hand-written update, or no training at all) and calls backward()/step() where they touch nothing the
history records. Each must lose exactly the process points, while the correct solutions keep them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.course import exercises
from grader.model.report import to_dict, validation_errors

ROOT = Path(__file__).resolve().parents[2]
ATTACKS = ROOT / "tests" / "process_attacks"
CASES = sorted(ATTACKS.glob("ex*.py"))


def process_checks(report):
    return [c for c in report.checks if c.name in
            {s.name for s in exercises.load(report.exercise).checks if s.compare == "process"}]


@pytest.mark.slow
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_backward_or_step_beside_the_training_earns_no_process_points(path, grade_file):
    exercise = path.name[:4]
    report = grade_file(exercise, path)
    assert validation_errors(json.loads(json.dumps(to_dict(report)))) == []
    assert report.status == "ok" and not report.full_marks
    assert process_checks(report), "the exercise has process checks"
    for check in process_checks(report):
        assert check.score == 0, (check.name, check.message)
    # a run that cannot be verified earns nothing with no code; one that did not respond is named
    if "frozen" not in path.stem:
        assert {c.diagnosis for c in process_checks(report)} <= {"no-autograd", "no-optimizer", None} | \
            ({"wrong-optimizer", "per-sample-updates"} if "other_rule" in path.stem else set())
    if "frozen" not in path.stem and "other_rule" not in path.stem:  # the numbers are right: only the process
        others = [c for c in report.checks if c not in process_checks(report)]  # points are lost
        assert others and all(c.passed for c in others), [(c.name, c.message) for c in others if not c.passed]


@pytest.mark.slow
@pytest.mark.parametrize("exercise", ["ex02", "ex03", "ex04", "ex05"])
def test_the_solutions_keep_their_process_points(exercise, grade_file):
    report = grade_file(exercise, ROOT / "solutions" / f"{exercise}.py")
    assert report.full_marks
    assert all(c.passed for c in process_checks(report))


# The eleven forgeries of issue 22, beside the earlier ones; then those of our own red team against the design.
RED_TEAM = {"ex02_history_as_views_of_one_buffer", "ex03_history_as_views_of_one_buffer",
            "ex04_history_as_views_of_one_buffer", "ex05_history_as_views_of_one_buffer",
            "ex03_live_tensor_in_the_second_run_only", "ex05_live_tensor_in_the_second_run_only",
            "ex03_other_rule_per_sample_by_hand", "ex04_other_rule_momentum_by_hand"}
FORGERIES = {"ex03_lone_leaf_hand_gradient", "ex02_lone_leaf_finite_differences", "ex03_backward_inputs_copy",
             "ex03_backward_that_raises", "ex04_step_on_fresh_leaf", "ex05_zero_rate_step", "ex03_grad_never_read",
             "ex03_surrogate_backward", "ex03_record_through_gc", "ex03_record_through_frames",
             "ex03_record_through_closure"}


def test_every_process_attack_says_what_it_is():
    assert {p.stem for p in CASES} >= {"ex03_dummy_backward", "ex04_dummy_optimizer", "ex04_frozen_dummy_steps",
                                       "ex05_dummy_optimizer", "ex05_frozen_dummy_steps"} | FORGERIES | RED_TEAM
    for path in CASES:
        assert path.read_text("utf-8").startswith('"""Attack (')


def test_the_probe_counts_a_backward_once_it_returns_and_walks_the_graph_behind_inputs():
    """Child side, in-process: a backward() that raises is no call; `inputs=` names no leaf the graph misses."""
    torch = pytest.importorskip("torch")
    from grader.sandbox.probing import Events, _torch_hooks

    events = Events()
    with _torch_hooks(events):
        w = torch.tensor(2.0, requires_grad=True)
        copy = torch.tensor(2.0, requires_grad=True)
        with pytest.raises(RuntimeError):
            (w * torch.ones(3)).backward()  # not a scalar: refused
        (torch.tensor(1.0, requires_grad=True) * 2).backward(inputs=[copy])
        (w * w).backward()
    assert events.backward == 2
    assert events.backward_leaves == [[], [[2.0, 4.0]]]


PERTURBED = """
import torch
from torch.autograd import backward as bound_at_import  # bound before the perturbation, perturbed all the same
from grader.sandbox.probing import perturb

perturb(0.5, 0.25)
w = torch.tensor(3.0, requires_grad=True)
(w * w).backward()
seen = [w.grad.item()]
w.grad = None
bound_at_import(w * w)
(g,) = torch.autograd.grad(w * w, w)
seen += [w.grad.item(), g.item()]
optimizer = torch.optim.SGD([w], lr=0.1)
w.grad = torch.tensor(1.0)
optimizer.step()
print(seen, round(w.item(), 6), optimizer.param_groups[0]["lr"])
"""


def test_the_counterfactual_mechanism_scales_autograd_and_the_optimizer_step(tmp_path):
    """probing.perturb in a fresh interpreter (it changes torch for the rest of the process): every route to
    autograd returns half the gradient, and a step moves a quarter as far with its rate restored after."""
    import subprocess
    import sys

    script = tmp_path / "perturbed.py"
    script.write_text(PERTURBED, "utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[3.0, 3.0, 3.0] 2.975 0.1"
