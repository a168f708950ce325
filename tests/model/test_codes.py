"""The diagnosis-code registry (grader/model/codes.py) is the one list: the schema, the docs, the explanations,
the hints and the corpus all agree with it, so a new code cannot be half-added."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from conftest import SUBMISSIONS

from grader.course import exercises, hints
from grader.grading import diagnose
from grader.model.codes import CODES, DiagnosisCode
from grader.model.report import schema as report_schema

ROOT = Path(__file__).resolve().parents[2]
DOCS_ROW = re.compile(r"^\| `(?P<code>[^`]+)` \| (?P<meaning>.*) \| (?P<since>[0-9.]+) \|$")


def test_the_codes_are_their_own_json_strings():
    assert json.dumps(list(CODES)) == json.dumps([code.value for code in CODES])
    assert all(DiagnosisCode(code.value) is code and code.since in ("1.0", "1.1", "1.2") and code.meaning
               for code in CODES)


def test_the_shipped_schema_enum_is_the_registry_in_its_order():
    enum = report_schema()["properties"]["checks"]["items"]["properties"]["diagnosis"]["enum"]
    assert enum == [None, *CODES]


def test_docs_list_exactly_the_registry_with_its_meanings_and_versions():
    """docs/diagnoses.md's table is generated from the registry when the site is built (scripts/docs_hooks.py);
    the page holds no hand-written row that could drift."""
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    text = (ROOT / "docs" / "diagnoses.md").read_text("utf-8")
    assert [line for line in text.splitlines() if DOCS_ROW.match(line)] == []
    built = hooks.on_page_markdown(text, None, None, None)
    rows = [m.groupdict() for line in built.splitlines() if (m := DOCS_ROW.match(line))]
    assert rows == [{"code": c.value, "meaning": c.meaning, "since": c.since} for c in CODES]


def test_every_code_is_explained_and_nothing_else_is():
    assert set(diagnose.EXPLANATIONS) == set(CODES)
    assert set(diagnose.TORCH_EXPLANATIONS) <= set(CODES)


@pytest.mark.parametrize("exercise_id", sorted(p.parent.name for p in (ROOT / "exercises").glob("ex*/hints.md")))
def test_hint_tags_name_registry_codes(exercise_id):
    for hint in hints.load(exercise_id):
        assert set(hint.helps) <= set(CODES), (hint.number, hint.helps)


def test_every_code_has_a_submission_that_makes_it():
    named = {}
    for expected in SUBMISSIONS.glob("ex*/*.expected.json"):
        for code in json.loads(expected.read_text("utf-8"))["diagnoses"]:
            named.setdefault(code, expected)
    missing = [code.value for code in CODES if code not in named]
    assert missing == [], f"no submission in tests/submissions/ is expected to get {missing}"
    assert set(named) <= set(CODES), set(named) - set(CODES)
    assert exercises.exercise_ids()  # the corpus's exercises exist
