"""A bounded parent: shapes the child reports are checked before any replay, so forged data the size of a
class's worth of work costs the parent nothing (80,000 rows of "initial weights" used to cost 6 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.course import exercises
from grader.grading import checks, mistakes

ROOT = Path(__file__).resolve().parents[2]

# The submission trains correctly-shaped, but patches the probe helper so the initial weights it reports
# are 80,000 rows: a replay of every cataloged mistake on those would be the parent's work, not the child's.
FORGED_WEIGHTS = (ROOT / "solutions" / "ex05.py").read_text("utf-8") + '''

from grader.sandbox import probing as _probing

_vector = _probing.Context.vector


def _forged(self, value, shape, what):
    if what == "the layer's weight" and shape[1] == 1:
        return [[0.5] * shape[1]] * 80_000
    return _vector(self, value, shape, what)


_probing.Context.vector = _forged
'''


def test_shapes_fit_compares_with_the_reference():
    reference = {"weight": [[1.0, 2.0, 3.0]] * 2, "bias": [0.0, 0.0], "loss": [1.0] * 5}
    assert checks.shapes_fit({"initial_weight": [[0.0] * 3] * 2, "initial_bias": [1.0, 1.0], "loss": [2.0] * 5},
                             reference)
    assert not checks.shapes_fit({"initial_weight": [[0.0] * 3] * 80_000}, reference)
    assert not checks.shapes_fit({"initial_bias": [1.0, 1.0, 1.0]}, reference)
    assert not checks.shapes_fit({"loss": [[1.0]] * 5}, reference)


@pytest.mark.slow
def test_forged_initial_weights_are_never_replayed(tmp_path, grade_file, monkeypatch):
    replayed = []
    original = mistakes.simulate

    def counting(problem, *args, **kwargs):
        replayed.append(max((p.size for p in problem.params), default=0))
        return original(problem, *args, **kwargs)

    monkeypatch.setattr(mistakes, "simulate", counting)
    path = tmp_path / "ex05.py"
    path.write_text(FORGED_WEIGHTS, "utf-8")
    report = grade_file("ex05", path)
    assert report.status == "ok" and not report.full_marks
    largest = max(c.args.get("input_dim", 1) * c.args.get("output_dim", 1) for c in exercises.load("ex05").checks)
    assert all(size <= largest for size in replayed), max(replayed)
