"""A runaway costs only itself (issue 25): a call that does not return within its budget is stopped, the
message names the line it was executing, the checks that need the same function are skipped, and every other
check still runs. No timing is asserted here (benchmarks/runaway.py measures it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.model.report import RunStatus, Status

RUNAWAYS = Path(__file__).resolve().parents[1] / "runaways"


@pytest.mark.slow
def test_an_endless_train_costs_the_train_checks_only(grade_file):
    report = grade_file("ex03", RUNAWAYS / "ex03_train_never_ends.py")
    by_name = {c.name: c for c in report.checks}
    others = [c for c in report.checks if not c.name.startswith("train")]
    assert others and all(c.passed for c in others), [(c.name, c.message) for c in others]
    train = [c for c in report.checks if c.name.startswith("train")]
    stopped = [c for c in train if c.status is Status.TIMEOUT]  # the first call, and the checks on its run
    assert stopped and all("ex03_train_never_ends.py, line" in c.message for c in stopped), stopped
    assert "did not return within" in stopped[0].message and "train" in by_name[stopped[0].name].message
    assert any(c.status is Status.SKIPPED for c in train)  # later calls of train: refused at once
    assert all(c.status in (Status.SKIPPED, Status.TIMEOUT) and c.score == 0 for c in train)
    assert report.status is RunStatus.OK  # the run as a whole ended: only the call was stopped


def test_the_child_stops_a_call_past_its_budget_and_refuses_the_function_after(tmp_path):
    """Child side, in-process: even a loop that swallows every exception is stopped (the alarm re-fires), the
    reply names the line, and a later call of the same function is refused at once."""
    import linecache
    import types

    from grader.model.job import Invocation
    from grader.sandbox.harness import run_invocation
    from grader.sandbox.probing import Context

    source = ("def train(x):\n    while True:\n        try:\n            x += 1\n"
              "        except BaseException:\n            pass\n")
    linecache.cache["loop.py"] = (len(source), None, source.splitlines(True), "loop.py")
    student = types.ModuleType("loop")
    exec(compile(source, "loop.py", "exec"), student.__dict__)  # noqa: S102 - this test's own loop
    probes = types.ModuleType("probe")
    exec("def train(ctx, x):\n    return {'value': ctx.call('train', x)}\n", probes.__dict__)  # noqa: S102
    ctx = Context(student, "cpu")
    first = run_invocation(Invocation("a", "train", {"x": 1}), probes, ctx, {"loop.py"}, 0.2)
    assert first.error.kind == "runaway" and first.error.name == "train"
    assert first.error.where.startswith("loop.py, line ")
    second = run_invocation(Invocation("b", "train", {"x": 1}), probes, ctx, {"loop.py"}, 0.2)
    assert second.error.kind == "runaway-skipped"


@pytest.mark.slow
def test_a_calls_budget_follows_the_time_its_reference_took(tmp_path, monkeypatch):
    """A slow but finite train (6 s once) is stopped at the floor's 5 s when its reference's time is not known,
    and graded in full where `grade record` found the reference call took 0.5 s (budget 30 × 0.5 = 15 s): an
    exercise whose reference is slow gets a budget to match."""
    import json
    import shutil

    from grader.course import exercises
    from grader.grading import pipeline as grading

    course = tmp_path / "exercises"
    shutil.copytree(exercises.course_root(), course)
    for timing in course.glob("ex03/**/timing.json"):
        timing.unlink()
    solution = (Path(__file__).resolve().parents[2] / "solutions" / "ex03.py").read_text("utf-8")
    slow = tmp_path / "ex03.py"
    docstring = '    """Gradient descent on w with autograd; one ``(w, loss)`` entry per epoch."""\n'
    once = ('    """Slow once."""\n    import time\n    if not getattr(train, "slept", False):\n'
            '        train.slept = True\n        time.sleep(6)\n')
    slow.write_text(solution.replace(docstring, once), "utf-8")
    assert "time.sleep(6)" in slow.read_text("utf-8")
    monkeypatch.setenv("GRADER_COURSE", str(course))
    exercises.load.cache_clear()
    try:
        stopped = grading.grade("ex03", slow, device="cpu")
        assert any(c.status is Status.TIMEOUT for c in stopped.checks if c.name.startswith("train")), \
            [(c.name, c.status) for c in stopped.checks]
        exercise = exercises.load("ex03")
        keys = [i["key"] for i in exercise.invocations()]
        (course / "ex03" / "references" / "timing.json").write_text(
            json.dumps({"exercise": "ex03", "seconds": {k: 0.5 for k in keys}}), "utf-8")
        assert grading.call_budget(grading.Limits(), 0.5) == 15.0
        graded = grading.grade("ex03", slow, device="cpu")
        assert graded.full_marks, [(c.name, c.status, c.message) for c in graded.checks if not c.passed]
    finally:
        exercises.load.cache_clear()
