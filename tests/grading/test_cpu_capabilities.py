"""The verdicts do not depend on the CPU: the whole diagnosis corpus, graded as a batch under each ATen CPU
capability this machine can run (default, avx2, and avx512 where present), gets the same scores, statuses and
diagnoses, check by check, and the outcome its .expected.json names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import cpu_capabilities
from test_diagnoses import CASES, case_id, expected_outcome

from grader.classroom import batch

CPU_CASES = [p for p in CASES if expected_outcome(p).get("device", "cpu") == "cpu"]


def verdicts(out: Path) -> dict[str, list[tuple]]:
    found = {}
    for report_path in sorted(out.glob("*/ex*.json")):
        report = json.loads(report_path.read_text("utf-8"))
        found[report_path.parent.name] = [(report["score"], report.get("status"))] + [
            (c["name"], c["status"], c["score"], c["diagnosis"]) for c in report["checks"]]
    return found


def problems(out: Path) -> list[tuple[str, str | None, str | None]]:
    """The students whose grade is not a clean run, with the status and error their report gives."""
    found = []
    for report_path in sorted(out.glob("*/ex*.json")):
        report = json.loads(report_path.read_text("utf-8"))
        if report.get("status") != "ok":
            found.append((report_path.parent.name, report.get("status"), report.get("error")))
    return found


@pytest.fixture(scope="module")
def corpus_class(tmp_path_factory) -> Path:
    """The corpus as a class folder: one student per case, named after it."""
    root = tmp_path_factory.mktemp("corpus-class")
    for path in CPU_CASES:
        exercise = path.parent.name
        student = root / case_id(path).replace("/", "-")
        student.mkdir()
        shutil.copyfile(path, student / f"{exercise}.py")
    return root


@pytest.mark.slow
def test_the_corpus_gets_the_same_verdicts_under_every_cpu_capability(corpus_class, tmp_path, monkeypatch):
    capabilities = cpu_capabilities()
    assert len(capabilities) >= 2 or capabilities == ["default"]  # a non-x86 CPU has only the default
    graded = {}
    for capability in capabilities:
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", capability)  # passed through to the workers, which import torch
        out = tmp_path / capability
        result = batch.run(corpus_class, out, options=batch.Options(jobs=2, device="cpu"))
        assert result.graded == len(CPU_CASES), (problems(out), result.summary["statuses"])
        graded[capability] = verdicts(out)
    first = capabilities[0]
    for capability in capabilities[1:]:
        differing = [s for s in graded[first] if graded[first][s] != graded[capability].get(s)]
        assert not differing, f"{first} and {capability} disagree on {differing}"
    for path in CPU_CASES:
        expected = expected_outcome(path)
        checks = graded[first][case_id(path).replace("/", "-")][1:]
        assert {c[3] for c in checks if c[3]} == set(expected["diagnoses"]), (path, checks)
        assert all(c[1] == "passed" for c in checks) == expected["full_marks"], (path, checks)
