"""Process checks need the process: a backward() or step() beside the training, not the training itself.

Each submission in tests/process_attacks/ gets the right numbers some other way (a hand-written gradient,
a hand-written update, or no training at all) and calls backward()/step() where they touch nothing the
history records. Each must lose exactly the process points, while the correct solutions keep them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader import exercises
from grader.report import to_dict, validation_errors

ROOT = Path(__file__).resolve().parent.parent
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
    if "dummy" in path.stem and "frozen" not in path.stem:  # the numbers themselves are right
        trained = [c for c in report.checks if c not in process_checks(report) and c.name.startswith("train")]
        assert trained and all(c.passed for c in trained), [(c.name, c.message) for c in trained if not c.passed]


@pytest.mark.slow
@pytest.mark.parametrize("exercise", ["ex02", "ex03", "ex04", "ex05"])
def test_the_solutions_keep_their_process_points(exercise, grade_file):
    report = grade_file(exercise, ROOT / "solutions" / f"{exercise}.py")
    assert report.full_marks
    assert all(c.passed for c in process_checks(report))


def test_every_process_attack_says_what_it_is():
    assert {p.stem for p in CASES} >= {"ex03_dummy_backward", "ex04_dummy_optimizer", "ex04_frozen_dummy_steps",
                                       "ex05_dummy_optimizer", "ex05_frozen_dummy_steps"}
    for path in CASES:
        assert path.read_text("utf-8").startswith('"""Attack (')
