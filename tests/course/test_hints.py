"""Hints: parsing and tags, `grade hint` progress (robust to bad state files), and diagnosis → hint."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli.main import main
from grader.course import exercises, hints
from grader.formats import human
from grader.model.report import CheckResult, Report, RunStatus, Status, Submission

ROOT = Path(__file__).resolve().parents[2]
HINT_EXERCISES = [e for e in exercises.exercise_ids() if (exercises.course_root() / e / "hints.md").is_file()]
# The diagnosis codes CONTRACT.md names; every tag must be one of them.
CODES = {
    "gradient-not-averaged", "gradient-missing-factor-2", "gradient-sign", "grad-not-zeroed",
    "loss-after-update", "step-before-backward", "shape-broadcast", "ignores-arguments", "no-autograd",
    "no-optimizer", "device-mismatch", "not-implemented",
    "w-before-update", "history-aliases-tensor", "rebound-parameter", "argument-order", "module-not-initialised",
    # schema 1.2
    "wrong-optimizer", "per-sample-updates",
}


@pytest.fixture(autouse=True)
def state_path(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "state.json"
    monkeypatch.setenv("GRADER_STATE", str(path))
    return path


def test_parse_strips_tags_and_keeps_codes():
    text = "<!-- helps: grad-not-zeroed, loss-after-update -->\nZero it.\n---\nPlain hint.\n---\n\n"
    parsed = hints.parse(text)
    assert [h.text for h in parsed] == ["Zero it.", "Plain hint."]
    assert parsed[0].helps == ("grad-not-zeroed", "loss-after-update")
    assert parsed[1].helps == ()
    assert [h.number for h in parsed] == [1, 2]


@pytest.mark.parametrize("exercise_id", HINT_EXERCISES)
def test_every_exercise_has_graded_hints_with_known_tags(exercise_id):
    loaded = hints.load(exercise_id)
    assert len(loaded) >= 1  # an exercise has as many hints as its author writes
    for hint in loaded:
        assert "<!--" not in hint.text and "-->" not in hint.text
        assert set(hint.helps) <= CODES, hint.helps
    # from a nudge to nearly the answer: the last hint spells out more than the first
    assert len(loaded) == 1 or len(loaded[-1].text) > len(loaded[0].text) * 0.8


def test_next_hint_advances_and_stops_at_the_last(state_path):
    total = len(hints.load("ex03"))
    seen = [hints.next_hint_text("ex03") for _ in range(total + 1)]
    assert [int(re.match(r"Hint (\d+)/", s).group(1)) for s in seen] == list(range(1, total + 1)) + [total]
    assert "last hint" in seen[-1]
    assert json.loads(state_path.read_text())["ex03"] == total
    assert hints.next_hint_text("ex03", reset=True).startswith(f"Hint 1/{total}")


def test_progress_is_per_exercise():
    hints.next_hint_text("ex03")
    hints.next_hint_text("ex03")
    assert hints.next_hint_text("ex01").startswith("Hint 1/")
    assert hints.next_hint_text("ex03").startswith("Hint 3/")


def test_all_shows_every_hint_without_tags_and_without_advancing(state_path):
    text = hints.next_hint_text("ex03", show_all=True)
    assert text.count("Hint ") == len(hints.load("ex03"))
    assert "helps:" not in text
    assert not state_path.exists()


def test_number_shows_that_hint_and_rejects_others():
    assert hints.next_hint_text("ex03", number=2).startswith("Hint 2/")
    assert "no hint 99" in hints.next_hint_text("ex03", number=99)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"ex03": "two", "ex01": -4, "ex02": true}',
                                     "\x00\xff", ""])
def test_corrupt_state_starts_over(state_path, content):
    state_path.write_text(content, "latin-1")
    assert hints.next_hint_text("ex03").startswith("Hint 1/")
    assert json.loads(state_path.read_text())["ex03"] == 1


def test_state_that_is_a_directory_or_unwritable_still_shows_the_hint(tmp_path, monkeypatch):
    folder = tmp_path / "a-directory"
    folder.mkdir()
    monkeypatch.setenv("GRADER_STATE", str(folder))
    text = hints.next_hint_text("ex03")
    assert text.startswith("Hint 1/") and "could not save" in text
    monkeypatch.setenv("GRADER_STATE", str(tmp_path / "missing-dir" / "state.json"))
    hints.next_hint_text("ex03")
    assert hints.next_hint_text("ex03").startswith("Hint 2/")  # the folder was made and progress kept
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("GRADER_STATE", str(blocker / "state.json"))  # its "folder" is a file
    assert "could not save" in hints.next_hint_text("ex03")
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        monkeypatch.setenv("GRADER_STATE", str(locked / "state.json"))
        assert "could not save" in hints.next_hint_text("ex03")


def test_hint_for_uses_tags():
    for exercise_id in HINT_EXERCISES:
        for hint in hints.load(exercise_id):
            for code in hint.helps:
                first = hints.hint_for(exercise_id, code)
                assert first is not None and first <= hint.number
    assert hints.hint_for("ex03", "grad-not-zeroed") == 2
    assert hints.hint_for("ex03", "no-such-code") is None


def _report(*checks: CheckResult) -> Report:
    return Report(exercise="ex03", title="t", submission=Submission("ex03.py", "0" * 64, "py", 1),
                  checks=checks, devices=("cpu",), grader_version="0", versions={}, sandbox={"tier": "x"},
                  status=RunStatus.OK)


def test_annotate_points_a_diagnosed_failure_at_its_hint_and_human_output_says_so():
    failed = CheckResult("train", Status.FAILED, 0, 3, "epoch 2 differs.", diagnosis="grad-not-zeroed")
    passed = CheckResult("forward", Status.PASSED, 1, 1, "ok")
    report = hints.annotate(_report(failed, passed))
    assert report.checks[0].hint == 2 and report.checks[1].hint is None
    text = human.render(report, hint_count=4)
    assert "diagnosis: grad-not-zeroed; hint 2 helps: `grade hint ex03 -n 2`" in text


def test_cli_hint_commands(tmp_path):
    runner = CliRunner()
    env = {"GRADER_STATE": str(tmp_path / "cli-state.json")}
    if "ex03" not in exercises.exercise_ids():
        pytest.skip("ex03 is not registered")
    first = runner.invoke(main, ["hint", "ex03"], env=env)
    second = runner.invoke(main, ["hint", "ex03"], env=env)
    assert first.exit_code == 0 and first.output.startswith("Hint 1/")
    assert second.output.startswith("Hint 2/")
    assert runner.invoke(main, ["hint", "ex03", "--reset"], env=env).output.startswith("Hint 1/")
    every = runner.invoke(main, ["hint", "ex03", "--all"], env=env).output
    assert every.count("Hint ") == len(hints.load("ex03")) and "<!--" not in every
    assert runner.invoke(main, ["hint", "ex03", "-n", "3"], env=env).output.startswith("Hint 3/")
    assert "Linear regression" in runner.invoke(main, ["hint", "ex03", "--statement"], env=env).output
