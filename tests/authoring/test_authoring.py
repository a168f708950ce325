"""Authoring: the mutation catalogue, `grade mutants`, the spec's schema, `grade check-exercise`, a broken
exercise named in one line, and a sixth exercise added by copying one into another course (GRADER_COURSE)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import full_marks

from grader.authoring import mutants, operators, spec
from grader.cli.main import main
from grader.course import exercises

ROOT = Path(__file__).resolve().parents[2]
WITH_SOLUTIONS = [e for e in exercises.exercise_ids()
                  if exercises.solutions_root() and (exercises.solutions_root() / f"{e}.py").is_file()]
# The mistakes the catalogue must hold (issue 28's list), by operator name.
REQUIRED_OPERATORS = {"drop-zero-grad", "step-before-backward", "sum-for-mean", "missing-factor-2", "flipped-sign",
                      "loss-after-update", "w-before-update", "live-tensor-appended", "rebound-parameter", "momentum",
                      "adam", "per-sample-updates", "global-for-argument", "hard-coded-learning-rate",
                      "hard-coded-epochs", "shape-broadcast", "missing-super-init"}


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the course (exercises/ and solutions/) that GRADER_COURSE points the grader at."""
    root = tmp_path / "course"
    shutil.copytree(exercises.course_root(), root / "exercises")
    shutil.copytree(ROOT / "solutions", root / "solutions")
    monkeypatch.setenv("GRADER_COURSE", str(root / "exercises"))
    exercises.load.cache_clear()
    yield root
    exercises.load.cache_clear()


def add_exercise(root: Path, source: str, target: str, title: str) -> None:
    """What docs/authoring.md's worked example does: copy the folder and the solution, give it its title."""
    shutil.copytree(root / "exercises" / source, root / "exercises" / target)
    for stale in ("references", "hidden/references.json", "hidden/timing.json"):
        path = root / "exercises" / target / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    spec_path = root / "exercises" / target / "spec.toml"
    text = spec_path.read_text("utf-8")
    spec_path.write_text(re.sub(r'^title = ".*"$', f'title = "{title}"', text, flags=re.MULTILINE), "utf-8")
    shutil.copy(root / "solutions" / f"{source}.py", root / "solutions" / f"{target}.py")


# ---- the catalogue

def test_the_catalogue_holds_every_mistake_the_issue_lists() -> None:
    assert {op.name for op in operators.OPERATORS} >= REQUIRED_OPERATORS


@pytest.mark.parametrize("exercise_id", WITH_SOLUTIONS)
def test_each_mutant_is_the_solution_with_one_change(exercise_id: str) -> None:
    solution = (exercises.solutions_root() / f"{exercise_id}.py").read_text("utf-8")
    plain = ast.unparse(ast.parse(solution)) + "\n"
    found = mutants.catalogue(exercise_id)
    assert found, f"{exercise_id}: no operator applies"
    sources = [m.source for m in found]
    assert plain not in sources
    assert len(set(sources)) == len(sources), "two operators made the same mutant"
    for mutant in found:
        ast.parse(mutant.source)
        assert 1 <= mutant.line <= len(solution.splitlines())


def test_operators_apply_only_where_the_code_allows() -> None:
    """ex01 has no optimizer, no module and no autograd: nothing to swap, initialise or zero."""
    names = {m.operator for m in mutants.catalogue("ex01")}
    assert not names & {"adam", "momentum", "missing-super-init", "drop-zero-grad", "step-before-backward"}
    assert "missing-super-init" in {m.operator for m in mutants.catalogue("ex05")}


def test_nameable_follows_the_registry_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistake without a code (as momentum was before schema 1.2's `wrong-optimizer`) is not nameable until its
    code lands in the registry."""
    assert mutants.registered("grad-not-zeroed") == "grad-not-zeroed"
    assert mutants.registered("wrong-optimizer") == "wrong-optimizer"  # landed in report schema 1.2
    assert mutants.registered("learning-rate-schedule") is None
    landed = (*mutants.CODES, "learning-rate-schedule")
    monkeypatch.setattr(mutants, "CODES", landed)
    assert mutants.registered("learning-rate-schedule") == "learning-rate-schedule"


# ---- grade mutants: graded on the warm pool

@pytest.mark.slow
def test_grade_mutants_json_as_documented() -> None:
    result = CliRunner().invoke(main, ["mutants", "ex03", "--format", "json"])
    data = json.loads(result.stdout)
    assert list(data) == ["exercise", "mutants", "caught", "total", "named", "nameable", "false_codes"]
    keys = ["operator", "description", "line", "equivalent", "score", "max_score", "caught", "expected_code", "codes"]
    assert all(list(m) == keys for m in data["mutants"])
    assert data["exercise"] == "ex03" and data["total"] == sum(not m["equivalent"] for m in data["mutants"])
    assert data["caught"] == data["total"] > 10  # the issue's goals: every mutant caught, most named
    assert data["named"] >= 0.9 * data["nameable"]
    by_operator = {m["operator"]: m for m in data["mutants"]}
    assert by_operator["drop-zero-grad"]["codes"] == ["grad-not-zeroed"]
    assert by_operator["per-sample-updates"]["expected_code"] == "per-sample-updates"
    assert by_operator["per-sample-updates"]["codes"] == ["per-sample-updates"]
    assert data["false_codes"] == 0 and result.exit_code == 0  # 1 would mean a false code (docs/authoring.md)


@pytest.mark.slow
@pytest.mark.parametrize("exercise_id", exercises.exercise_ids())
def test_the_course_mutants_get_no_false_code(exercise_id: str) -> None:
    """A hard-coded epoch count or per-sample updates once got `no-autograd`/`no-optimizer` from the process
    checks' second, perturbed run: every mutant is now caught, and named by its own code only."""
    analysis = mutants.analyse(exercise_id)
    assert [(m.operator, m.false_codes) for m in analysis.mutants if m.false_codes] == []
    assert analysis.caught == analysis.total and analysis.named == analysis.nameable


@pytest.mark.slow
def test_an_equivalent_mutant_is_found_by_its_probe_results() -> None:
    """A change that moves no probe result (a statement that does nothing) is equivalent, not a survivor."""
    def add_pass(tree: ast.Module, ctx: operators.Context) -> list[operators.Site]:
        train = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "train")
        return [operators.Site(train.lineno, lambda: train.body.insert(0, ast.Pass()))]

    noop = operators.Operator("no-op", "a statement that does nothing", "ignores-arguments", add_pass)
    flip = next(op for op in operators.OPERATORS if op.name == "flipped-sign")
    analysis = mutants.analyse("ex03", operators=(noop, flip))
    equivalent, flipped = analysis.mutants
    assert equivalent.equivalent and not equivalent.caught and equivalent.score == equivalent.max_score
    assert not flipped.equivalent and flipped.caught
    assert (analysis.total, analysis.caught, analysis.false_codes) == (1, 1, 0)


# ---- the spec's schema, its defaults written once

def test_defaults_are_written_once_in_the_schema_the_loader_reads() -> None:
    assert exercises.spec_default("atol") == 1e-5  # the documented value (the loader said 1e-6)
    assert exercises.spec_default("rtol") == 1e-4
    tolerances = " ".join((ROOT / "docs" / "tolerances.md").read_text("utf-8").split())
    rtol, atol = (spec.toml_value(exercises.spec_default(k)) for k in ("rtol", "atol"))
    assert f"rtol = {rtol} and atol = {atol}" in tolerances


def test_the_authoring_guide_lists_every_key_with_its_default() -> None:
    assert spec.keys_table() in (ROOT / "docs" / "authoring.md").read_text("utf-8")


def test_a_spec_without_tolerances_gets_the_documented_ones(course: Path) -> None:
    path = course / "exercises" / "ex03" / "spec.toml"
    path.write_text(re.sub(r"^(rtol|atol) = .*$", "", path.read_text("utf-8"), flags=re.MULTILINE), "utf-8")
    loaded = exercises.load("ex03")
    assert (loaded.rtol, loaded.atol) == (1e-4, 1e-5)


def test_every_exercise_of_the_course_is_valid() -> None:
    for exercise_id in exercises.folder_ids():
        assert spec.problems(exercise_id) == [], exercise_id


def test_spec_problems_name_the_file_and_the_key(course: Path) -> None:
    folder = course / "exercises" / "ex03"
    text = (folder / "spec.toml").read_text("utf-8")
    text = text.replace('title = "Linear regression with autograd"', 'titel = "typo"')
    text = text.replace("points = 3", "points = -3", 1)
    text = text.replace('require = "backward"\n', "")
    appended = text.count("[[checks]]")  # the index of the first check added below
    text += '\n[[checks]]\nname = "no probe"\n\n[[checks]]\nname = "bad probe"\nprobe = "fit"\n'
    (folder / "spec.toml").write_text(text, "utf-8")
    assert spec.problems("ex03") == [
        "spec.toml: title: missing (required)",
        "spec.toml: titel: unknown key",
        "spec.toml: checks[4].points: -3 is less than or equal to the minimum of 0",
        "spec.toml: checks[6].require: missing (required)",
        f"spec.toml: checks[{appended}]: needs `probe` (or `run`, naming an earlier check)",
        f"spec.toml: checks[{appended + 1}].probe: probe.py defines no function 'fit'",
    ]


# ---- a broken exercise: named in one line, the others go on

def test_a_broken_exercise_is_named_and_the_others_go_on(course: Path) -> None:
    spec_path = course / "exercises" / "ex02" / "spec.toml"
    spec_path.write_text(re.sub(r"^title = .*$", "", spec_path.read_text("utf-8"), flags=re.MULTILINE), "utf-8")
    (course / "exercises" / "ex04" / "hidden" / "spec.toml").write_text("[[checks]]\nname = 'x'\n", "utf-8")
    shutil.rmtree(course / "solutions")
    runner = CliRunner()

    listed = runner.invoke(main, ["list"])
    assert listed.exception is None or isinstance(listed.exception, SystemExit), listed.exception
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["ex01", "ex03", "ex05"]
    assert listed.stderr.splitlines() == [
        "Error: exercise ex02 is broken: spec.toml: title: missing (a string: the exercise's title)",
        "Error: exercise ex04 is broken: hidden/spec.toml: checks[0].probe: missing"]

    graded = runner.invoke(main, ["ex02", str(course / "ex02.py")])
    assert graded.exit_code == 2 and "Traceback" not in graded.output
    assert graded.stderr.strip().splitlines()[-1].endswith("exercise ex02 is broken: spec.toml: title: missing "
                                                           "(a string: the exercise's title)")

    recorded = runner.invoke(main, ["record"])  # no solutions here: each exercise named, none stops the rest
    assert recorded.exit_code == 1 and recorded.exception is None or isinstance(recorded.exception, SystemExit)
    lines = recorded.stderr.splitlines()
    assert [line.split()[1] for line in lines] == ["ex01:", "ex02:", "ex03:", "ex04:", "ex05:"]
    assert "title: missing" in lines[1] and "no solution" in lines[0]


def test_the_service_serves_the_others_and_names_the_broken_one(course: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    spec_path = course / "exercises" / "ex02" / "spec.toml"
    spec_path.write_text(spec_path.read_text("utf-8").replace("title", "titel", 1), "utf-8")
    pytest.importorskip("fastapi")
    from grader.service.app import create_app
    from grader.service.config import Config

    exercises.load.cache_clear()  # as when the service starts on this course
    config = Config.from_environment(db_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", jobs=1,
                                     scheduler=None, public_url="http://127.0.0.1:1")
    with caplog.at_level("ERROR", logger="grader.service"):
        app = create_app(config)
    try:
        assert app.state.service.exercise_ids == ["ex01", "ex03", "ex04", "ex05"]
        assert [r.getMessage() for r in caplog.records] == [
            "exercise ex02 is broken and not served: spec.toml: title: missing (a string: the exercise's title)"]
    finally:
        app.state.service.close()


# ---- check-exercise, and a sixth exercise added by following the guide

def test_check_exercise_names_each_problem_and_fails(course: Path) -> None:
    (course / "exercises" / "ex03" / "hints.md").write_text("<!-- helps: no-such-code -->\nA hint.\n", "utf-8")
    spec_path = course / "exercises" / "ex03" / "spec.toml"
    spec_path.write_text(spec_path.read_text("utf-8").replace("points = 3", "points = 0", 1), "utf-8")
    result = CliRunner().invoke(main, ["check-exercise", "ex03"])
    assert result.exit_code == 1
    assert "ex03: spec.toml: checks[4].points: 0 is less than or equal to the minimum of 0" in result.stdout
    assert result.stdout.strip().endswith("ex03: NOT SOUND")


@pytest.mark.slow
def test_a_sixth_exercise_copied_from_ex03_is_recorded_graded_and_sound(course: Path) -> None:
    add_exercise(course, "ex03", "ex06", "Linear regression, once more")
    runner = CliRunner()
    unsound = runner.invoke(main, ["check-exercise", "ex06"])
    assert unsound.exit_code == 1 and "run `grade record ex06`" in unsound.stdout

    recorded = runner.invoke(main, ["record", "ex06"])
    assert recorded.exit_code == 0, recorded.output
    assert (course / "exercises" / "ex06" / "hidden" / "references.json").is_file()

    report = course / "report.json"
    graded = runner.invoke(main, ["ex06", str(course / "solutions" / "ex06.py"), "--report", str(report)])
    assert graded.exit_code == 0, graded.output
    data = json.loads(report.read_text("utf-8"))
    assert data["exercise"] == "ex06" and data["score"] == data["max_score"] == float(full_marks("ex03"))

    checked = runner.invoke(main, ["check-exercise", "ex06"])
    verdicts = dict(re.findall(r"^ex06: ([a-z ]+): (ok|PROBLEM)", checked.stdout, flags=re.MULTILINE))
    assert verdicts == {"spec": "ok", "hints": "ok", "references": "ok", "stub": "ok", "solution": "ok",
                        "mutants": "ok"}, checked.stdout
    caught, total = map(int, re.search(r"mutants: \w+: caught (\d+)/(\d+)", checked.stdout).groups())
    assert caught == total > 10
    assert checked.exit_code == 0 and "ex06: sound" in checked.stdout, checked.stdout

    # the quick suite's generic tests, run over the course that now holds six exercises
    tests = ROOT / "tests"
    quick = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-m", "not slow", "-p", "no:cacheprovider",
         str(tests / "course" / "test_exercises.py"), str(tests / "course" / "test_hints.py"),
         str(tests / "grading" / "test_references.py"), str(tests / "authoring" / "test_authoring.py"),
         "-k", "not sixth and not broken and not service and not check_exercise and not spec_problems"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "GRADER_COURSE": str(course / "exercises")})
    assert quick.returncode == 0, quick.stdout[-3000:] + quick.stderr[-2000:]
    assert "[ex06]" in quick.stdout  # the parametrized tests ran on the sixth exercise too
