"""`grade validate`: does a JSON file mean what it says? Reports, and the LMS results files the project writes.

A report is checked against its JSON Schema (shape), then for meaning: scores within 0..max, the report's score
and maximum the sums of its checks', a passed check with all its points, full_marks true exactly at full marks.
Gradescope's and PrairieLearn's results.json are recognised by their keys and checked against the shapes their
documentation gives (schema/*-results.schema.json), then for meaning the same way.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Any

from grader.model.report import Status, validation_errors

# Scores are sums of a few decimal points; anything past this is a real mismatch, not float rounding.
SCORE_SLACK = 1e-6
KINDS = ("report", "gradescope", "prairielearn")


@cache
def lms_schema(platform: str) -> dict[str, Any]:
    """The published shape of a platform's results.json: "gradescope" or "prairielearn"."""
    text = resources.files("grader").joinpath(f"schema/{platform}-results.schema.json").read_text("utf-8")
    return json.loads(text)


def kind_of(data: Any) -> str | None:
    """Which of KINDS a parsed JSON document is meant to be (None: none of them)."""
    if not isinstance(data, dict):
        return None
    if "schema_version" in data or "exercise" in data or "checks" in data:
        return "report"
    if "gradable" in data:
        return "prairielearn"
    if "tests" in data or ("score" in data and "output" in data):
        return "gradescope"
    return None


def problems(data: Any) -> tuple[str | None, list[str]]:
    """(kind, every way the document breaks its shape or its meaning); an empty list means valid."""
    kind = kind_of(data)
    if kind is None:
        return None, ["not a grade report, nor a Gradescope or PrairieLearn results.json"]
    if kind == "report":
        shape = validation_errors(data)
        return kind, shape or report_meaning(data)
    import jsonschema  # as in report.validation_errors: only `grade validate` needs it

    validator = jsonschema.Draft202012Validator(lms_schema(kind))
    shape = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
             for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))]
    if shape:
        return kind, shape
    return kind, gradescope_meaning(data) if kind == "gradescope" else prairielearn_meaning(data)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SCORE_SLACK, abs_tol=SCORE_SLACK)


def report_meaning(data: dict[str, Any]) -> list[str]:
    found = []
    score, top = data["score"], data["max_score"]
    if not 0 <= score <= top:
        found.append(f"score: {score} is outside 0..{top}")
    checks = data["checks"]
    for index, check in enumerate(checks):
        where = f"checks/{index} ({check['name']!r})"
        if not 0 <= check["score"] <= check["max_score"]:
            found.append(f"{where}: score {check['score']} is outside 0..{check['max_score']}")
        if check["status"] == Status.PASSED and not _close(check["score"], check["max_score"]):
            found.append(f"{where}: passed, but scored {check['score']} of {check['max_score']}")
        if check["status"] == Status.PASSED and check.get("diagnosis"):
            found.append(f"{where}: passed, but carries the diagnosis {check['diagnosis']!r}")
    if not _close(sum(c["score"] for c in checks), score):
        found.append(f"score: {score} is not the sum of the checks' scores ({sum(c['score'] for c in checks):g})")
    if not _close(sum(c["max_score"] for c in checks), top):
        found.append(f"max_score: {top} is not the sum of the checks' maxima ({sum(c['max_score'] for c in checks):g})")
    if data["full_marks"] != (bool(checks) and all(c["status"] == Status.PASSED for c in checks)):
        found.append(f"full_marks: {data['full_marks']} does not match the checks' statuses")
    return found


def gradescope_meaning(data: dict[str, Any]) -> list[str]:
    found = []
    tests = data.get("tests", [])
    for index, test in enumerate(tests):
        if test["score"] > test["max_score"] + SCORE_SLACK:
            found.append(f"tests/{index} ({test['name']!r}): score {test['score']} above its max_score "
                         f"{test['max_score']}")
    if tests and not _close(sum(t["score"] for t in tests), data["score"]):
        found.append(f"score: {data['score']} is not the sum of the tests' scores ({sum(t['score'] for t in tests):g})")
    return found


def prairielearn_meaning(data: dict[str, Any]) -> list[str]:
    found = []
    tests = data.get("tests", [])
    for index, test in enumerate(tests):
        if test["points"] > test["max_points"] + SCORE_SLACK:
            found.append(f"tests/{index} ({test['name']!r}): points {test['points']} above max_points "
                         f"{test['max_points']}")
    possible = sum(t["max_points"] for t in tests)
    if data["gradable"] and possible > 0 and not _close(sum(t["points"] for t in tests) / possible, data["score"]):
        found.append(f"score: {data['score']} is not the tests' points over their maxima "
                     f"({sum(t['points'] for t in tests):g}/{possible:g})")
    if not data["gradable"] and data["score"] != 0:
        found.append(f"score: {data['score']} on a submission marked not gradable")
    return found
