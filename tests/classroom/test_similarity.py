"""Similarity on the corpus: a copy that differs only in names and whitespace is found for every exercise;
the corpus's correct variants (written apart from each other and from the solution) are not flagged; the
stub's own code counts for nothing."""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.classroom import similarity
from grader.cli.main import main
from grader.course import exercises

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / "tests" / "submissions"
EXERCISES = exercises.exercise_ids()


def disguised(source: str) -> str:
    """Every local name renamed (variables, parameters, loop targets) and the whitespace reflowed."""
    tree = ast.parse(source)
    local = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    local |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    local -= set(keyword.kwlist) | {"self"}
    names = {name: f"v{number}_{name[::-1]}" for number, name in enumerate(sorted(local))}
    tokens = []
    previous = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        text = token.string
        if token.type == tokenize.NAME and text in names and (previous is None or previous.string != "."):
            text = names[text]
        tokens.append((token.type, text))
        previous = token
    renamed = tokenize.untokenize(tokens)  # untokenize's own spacing: every line's whitespace changes
    return "\n\n".join(renamed.split("\n"))


def corpus(exercise_id: str) -> dict[str, str]:
    files = {p.stem: p.read_text("utf-8") for p in sorted((SUBMISSIONS / exercise_id).glob("correct_*.py"))}
    files["solution"] = (ROOT / "solutions" / f"{exercise_id}.py").read_text("utf-8")
    return files


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_a_copy_differing_only_in_names_and_whitespace_is_found(exercise_id):
    original = corpus(exercise_id)["solution"]
    copy = disguised(original)
    assert copy != original and compile(copy, "copy.py", "exec")
    pairs = similarity.compare(exercise_id, {"original": original, "copier": copy})
    assert [(p.first, p.second) for p in pairs] == [("copier", "original")]
    assert pairs[0].similarity >= 0.95 and pairs[0].first_spans and pairs[0].second_spans


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_independent_correct_solutions_are_not_flagged(exercise_id):
    files = corpus(exercise_id)
    assert len(files) >= 2
    assert similarity.compare(exercise_id, files) == []


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_the_stub_counts_for_nothing(exercise_id):
    stub = exercises.load(exercise_id).stub
    pairs = similarity.compare(exercise_id, {"a": stub, "b": stub.replace("    ", "  ")}, threshold=0.0,
                               min_tokens=0)
    assert all(p.overlap_tokens == 0 for p in pairs)


def test_grade_similarity_on_graded_reports(tmp_path):
    """`grade similarity OUT` reads the files the reports name (here written by hand, as a batch would)."""
    import json

    out = tmp_path / "out"
    files = {"ana": corpus("ex03")["solution"], "dan": disguised(corpus("ex03")["solution"]),
             "eve": corpus("ex03")["correct_zero_first"]}
    for student, code in files.items():
        path = tmp_path / "class" / student / "ex03.py"
        path.parent.mkdir(parents=True)
        path.write_text(code, "utf-8")
        (out / student).mkdir(parents=True)
        (out / student / "ex03.json").write_text(json.dumps({"submission": {"path": str(path)}}), "utf-8")
    outcome = CliRunner().invoke(main, ["similarity", str(out)])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads((out / "similarity.json").read_text("utf-8"))
    assert [(p["first"], p["second"]) for p in result["exercises"]["ex03"]["pairs"]] == [("ana", "dan")]
    assert "3 submissions compared, 1 pair(s) alike" in outcome.output
