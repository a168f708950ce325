"""The run status end to end: the whole corpus (tests/submissions) and the attack suite (tests/attacks) graded as
one `grade batch`; for every submission the gradebook's status column is the report's `status` (empty for
`ok`), and every report reads back through the result model (report.from_dict) as the report written."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import SUBMISSIONS
from test_attacks import ALL, CANARY_NAME, Scene, _defended, _safe_to_run

from grader.classroom import batch
from grader.grading import pipeline as grading
from grader.model.report import RUN_STATUSES, from_dict, to_dict, validation_errors

LIMITS = grading.Limits(timeout=15.0, memory_mib=1024)  # the fork bomb runs until the timeout


def corpus() -> dict[str, Path]:
    """{student folder: submission} for every corpus case, each student submitting one exercise."""
    cases = sorted(p for p in SUBMISSIONS.glob("ex*/*") if p.suffix in (".py", ".ipynb"))
    return {f"{p.parent.name}--{p.stem}": p for p in cases}


@pytest.fixture(scope="module")
def graded(sandbox_workers):
    best = sandbox_workers("auto")
    attacks = [a for a in ALL if _safe_to_run(a, best) and _defended(a, best)]
    root = Path(tempfile.mkdtemp(prefix="grader-status-batch-"))
    os.chmod(root, 0o777)  # the attacks' traps must be reachable by permissions: only the sandbox stops them
    scene = Scene(root)
    previous = os.environ.get(CANARY_NAME)
    os.environ[CANARY_NAME] = scene.canary
    try:
        directory = root / "class"
        shutil.rmtree(directory / "neighbour")
        for attack in attacks:
            source = scene.submission(attack).read_text("utf-8")
            (directory / f"attack--{attack}").mkdir()
            (directory / f"attack--{attack}" / "ex03.py").write_text(source, "utf-8")
        shutil.rmtree(directory / "attacker")
        cases = corpus()
        for student, path in cases.items():
            (directory / student).mkdir()
            shutil.copyfile(path, directory / student / f"{path.parent.name}{path.suffix}")
        out = root / "batch-out"
        result = batch.run(directory, out, None, batch.Options(jobs=2, device="cpu", limits=LIMITS))
        assert result.problems == 0 and result.graded == len(cases) + len(attacks)
        yield out
    finally:
        if previous is None:
            os.environ.pop(CANARY_NAME, None)
        else:
            os.environ[CANARY_NAME] = previous
        scene.close()
        shutil.rmtree(root, ignore_errors=True)


def status_columns(out: Path) -> dict[str, dict[str, str]]:
    """{student: {exercise: status}} from the gradebook's status column ("ex03: timeout; ex01: missing")."""
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        rows = {row["student"]: row["status"] for row in csv.DictReader(handle)}
    return {student: dict(part.split(": ", 1) for part in text.split("; ") if part) for student, text in rows.items()}


@pytest.mark.slow
def test_the_gradebooks_status_column_is_every_reports_status(graded):
    columns = status_columns(graded)
    reports = {p.parent.name: json.loads(p.read_text("utf-8")) for p in graded.glob("*/ex*.json")
               if p.name.count(".") == 1}
    assert set(reports) == set(columns)
    assert len(reports) > len(corpus())  # the attacks are in too
    for student, data in reports.items():
        assert data["status"] in RUN_STATUSES, student
        shown = columns[student].get(data["exercise"])
        assert shown == (None if data["status"] == "ok" else data["status"]), student
    statuses = {data["status"] for data in reports.values()}
    assert {"ok", "timeout", "exited"} <= statuses, statuses  # the suite does reach the run's other endings


@pytest.mark.slow
def test_every_report_reads_back_as_the_report_written(graded):
    for path in graded.glob("*/ex*.json"):
        if path.name.count(".") != 1:
            continue
        data = json.loads(path.read_text("utf-8"))
        report = from_dict(data)
        assert to_dict(report) == data, path
        assert from_dict(to_dict(report)) == report, path
        assert validation_errors(data) == [], path
        for check, written in zip(report.checks, data["checks"], strict=True):
            assert check.message == written["message"]
            assert (check.explanation is None) == (written["explanation"] is None)
            if check.explanation is not None:
                assert check.diagnosis and check.explanation in written["message"]
