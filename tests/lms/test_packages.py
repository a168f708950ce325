"""The Gradescope zip and the PrairieLearn question folder, each run through its own entry point on the
platform's documented layout, played in a temporary root (AUTOGRADER_ROOT, PL_GRADE_ROOT; GRADE_BIN is
this checkout's `grade`, standing in for what setup.sh / the Dockerfile install)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_lms import GRADESCOPE_SCHEMA, PRAIRIELEARN_SCHEMA, valid

from grader.cli.main import main
from grader.course import exercises, hints
from grader.lms import packages as packaging

ROOT = Path(__file__).resolve().parents[2]
GRADE = Path(sys.executable).parent / "grade"
BUGGY = (ROOT / "tests" / "submissions" / "ex03" / "bug_no_zero_grad.py").read_text("utf-8")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return packaging.build_wheel(tmp_path_factory.mktemp("wheel"))


def run_entry(script: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script)], env={**os.environ, "GRADE_BIN": str(GRADE), **env},
                          capture_output=True, text=True, timeout=300, check=False)


def gradescope_root(tmp_path: Path, package: Path) -> Path:
    """/autograder as Gradescope lays it out: the zip in source/, run_autograder beside it, submission/."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(root / "source")
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())
    (root / "submission").mkdir()
    return root


@pytest.mark.slow
def test_gradescope_zip_grades_on_gradescopes_layout(tmp_path, wheel):
    package = packaging.gradescope_package("ex03", tmp_path / "autograder.zip", wheel)
    names = zipfile.ZipFile(package).namelist()
    assert {"setup.sh", "run_autograder", "constraints.txt", wheel.name, "course/ex03/hidden/spec.toml"} <= set(names)
    root = gradescope_root(tmp_path, package)
    setup = (root / "source" / "setup.sh").read_text("utf-8")
    assert f"./{wheel.name}" in setup and "-c constraints.txt" in setup and "whl/cpu" in setup
    assert subprocess.run(["bash", "-n", str(root / "source" / "setup.sh")], check=False).returncode == 0
    assert "torch==2.13.0" in (root / "source" / "constraints.txt").read_text("utf-8")
    (root / "submission" / "ex03.py").write_text(BUGGY, "utf-8")
    done = run_entry(root / "run_autograder", AUTOGRADER_ROOT=str(root))
    assert done.returncode == 0, done.stderr
    data = valid(json.loads((root / "results" / "results.json").read_text("utf-8")), GRADESCOPE_SCHEMA)
    assert 0 < data["score"] < 15 and data["output_format"] == "md" and data["test_output_format"] == "md"
    hint = {h.number: h.text for h in hints.load("ex03")}
    diagnosed = [t for t in data["tests"] if "grad-not-zeroed" in t["output"]]
    assert diagnosed and all(f"**Hint 2:** {hint[2]}" in t["output"] for t in diagnosed)
    assert "grade hint" not in json.dumps(data)  # a Gradescope student cannot run it
    assert any(t["visibility"] == "after_published" for t in data["tests"])  # hidden checks came along


@pytest.mark.slow
def test_gradescope_wrongly_named_upload_names_what_was_found(tmp_path, wheel):
    root = gradescope_root(tmp_path, packaging.gradescope_package("ex03", tmp_path / "a.zip", wheel))
    # two .py files, neither named after the exercise (Ex03.py or ex03 (1).py would be taken, with a note)
    (root / "submission" / "homework.py").write_text(BUGGY, "utf-8")
    (root / "submission" / "scratch.py").write_text(BUGGY, "utf-8")
    (root / "submission" / "notes.txt").write_text("hi", "utf-8")
    done = run_entry(root / "run_autograder", AUTOGRADER_ROOT=str(root))
    assert done.returncode == 0, done.stderr
    data = valid(json.loads((root / "results" / "results.json").read_text("utf-8")), GRADESCOPE_SCHEMA)
    assert data["score"] == 0 and "ex03.py" in data["output"]
    assert "Found: homework.py, notes.txt, scratch.py" in data["output"]


@pytest.mark.slow
def test_prairielearn_folder_grades_on_prairielearns_layout(tmp_path, wheel):
    question = packaging.prairielearn_package("ex03", tmp_path / "question", wheel)
    info = json.loads((question / "info.json").read_text("utf-8"))
    assert info["gradingMethod"] == "External" and info["type"] == "v3"
    options = info["externalGradingOptions"]
    assert options["enabled"] is True and options["entrypoint"] == "/grade/tests/run.sh" and options["image"]
    page = (question / "question.html").read_text("utf-8")
    assert 'file-name="ex03.py"' in page and 'source-file-name="ex03.py"' in page
    assert "<pl-external-grader-results>" in page and exercises.load("ex03").title in page
    assert (question / "ex03.py").read_text("utf-8") == exercises.load("ex03").stub
    assert (question / "tests" / wheel.name).is_file() and (question / "tests" / "course" / "ex03" / "hidden").is_dir()
    assert wheel.name in (question / "tests" / "Dockerfile").read_text("utf-8")
    # /grade as PrairieLearn lays it out: tests/ copied from the question, the student's files in student/
    root = tmp_path / "grade"
    (root / "student").mkdir(parents=True)
    (root / "tests").symlink_to(question / "tests", target_is_directory=True)
    (root / "student" / "ex03.py").write_text(BUGGY, "utf-8")
    done = run_entry(root / "tests" / "run.sh", PL_GRADE_ROOT=str(root))
    assert done.returncode == 0, done.stderr
    results = root / "results" / "results.json"
    data = valid(json.loads(results.read_text("utf-8")), PRAIRIELEARN_SCHEMA)
    assert data["gradable"] is True and 0 < data["score"] < 1
    assert [i["url"][:22] for i in data["images"]] == ["data:image/png;base64,"]
    assert results.stat().st_size < 1_000_000  # PrairieLearn's limit
    hint = {h.number: h.text for h in hints.load("ex03")}
    assert any(hint[2] in t["message"] for t in data["tests"] if "grad-not-zeroed" in t["message"])
    # an image without the grader still answers, and the attempt does not count
    done = run_entry(root / "tests" / "run.sh", PL_GRADE_ROOT=str(root), GRADE_BIN="no-such-grade")
    assert done.returncode == 0
    assert json.loads(results.read_text("utf-8"))["gradable"] is False


def test_package_commands_refuse_cleanly(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x", "utf-8")
    outcome = CliRunner().invoke(main, ["prairielearn-package", "ex03", "--out", str(tmp_path / "full"),
                                        "--wheel", __file__])
    assert outcome.exit_code == 1 and "not empty" in outcome.output
    outcome = CliRunner().invoke(main, ["gradescope-package", "ex99"])
    assert outcome.exit_code == 2


# ---- the hidden part, against a submission that goes looking for it

# Reads every file of the installed autograder it can and prints it; the hidden references are the prize.
THIEF = '''\
import os

for top, dirs, files in os.walk({root!r}):
    for name in files:
        path = os.path.join(top, name)
        if "hidden" not in path:
            continue
        try:
            with open(path) as handle:
                print("LEAK", path, handle.read()[:300])
        except OSError as exc:
            print("DENIED", path, type(exc).__name__)
for path in ({hidden!r} + "/references.json", {hidden!r} + "/spec.toml"):
    try:
        with open(path) as handle:
            print("LEAK", path, handle.read()[:300])
    except OSError as exc:
        print("DENIED", path, type(exc).__name__)


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
'''

# `grade` with every worker held at one sandbox tier, as a machine that offers no better would run it.
AT_TIER = '''#!{python}
import sys

from grader.sandbox import client as runner

_start = runner.ZygoteClient.__init__


def at_tier(self, framework, want_cuda=False, sandbox="auto", *args, **kwargs):
    _start(self, framework, want_cuda, {tier!r}, *args, **kwargs)


runner.ZygoteClient.__init__ = at_tier
from grader.cli.main import main  # noqa: E402

sys.exit(main())
'''


def grade_at_tier(folder: Path, tier: str) -> Path:
    script = folder / f"grade-at-{tier}"
    script.write_text(AT_TIER.format(python=sys.executable, tier=tier), "utf-8")
    script.chmod(0o755)
    return script


def installed_as_gradescope_does(package: Path) -> Path:
    """/autograder as Gradescope installs the zip (unzip, which restores each entry's mode), in a folder any
    user may enter: only the package's own modes and the sandbox may keep a submission out."""
    base = Path(tempfile.mkdtemp(prefix="grader-gradescope-"))
    base.chmod(0o755)
    root = base / "autograder"
    (root / "source").mkdir(parents=True)
    subprocess.run(["unzip", "-q", str(package), "-d", str(root / "source")], check=True, timeout=60)
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())
    (root / "submission").mkdir()
    for folder in (root, root / "source", root / "source" / "course", root / "submission"):
        folder.chmod(0o755)
    return root


@pytest.fixture
def fake_wheel(tmp_path) -> Path:
    wheel = tmp_path / "dl_grader-0-py3-none-any.whl"  # run_autograder is given this checkout's `grade`
    wheel.write_bytes(b"")
    return wheel


def test_the_hidden_part_ships_owner_only(tmp_path, fake_wheel):
    package = packaging.gradescope_package("ex03", tmp_path / "autograder.zip", fake_wheel)
    modes = {info.filename: info.external_attr >> 16 for info in zipfile.ZipFile(package).infolist()}
    hidden = {name: mode for name, mode in modes.items() if "/hidden/" in name}
    assert stat.S_IMODE(hidden["course/ex03/hidden/"]) == 0o700
    assert stat.S_IMODE(hidden["course/ex03/hidden/references.json"]) == 0o600
    assert all(stat.S_IMODE(mode) & 0o077 == 0 for mode in hidden.values()), hidden
    assert "chmod 0600" in zipfile.ZipFile(package).read("setup.sh").decode()
    question = packaging.prairielearn_package("ex03", tmp_path / "question", fake_wheel)
    hidden_folder = question / "tests" / "course" / "ex03" / "hidden"
    assert stat.S_IMODE(hidden_folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in hidden_folder.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unzip") is None,
                    reason="the process tier gives a uid of its own only to a root grader; unzip installs the zip")
def test_a_submission_at_the_process_tier_cannot_read_the_installed_hidden_references(tmp_path, fake_wheel):
    # The attack: a container without user namespaces falls to the process tier, and a submission
    # read and printed the hidden references (shipped 0644).
    package = packaging.gradescope_package("ex03", tmp_path / "autograder.zip", fake_wheel)
    root = installed_as_gradescope_does(package)
    try:
        hidden = root / "source" / "course" / "ex03" / "hidden"
        (root / "submission" / "ex03.py").write_text(THIEF.format(root=str(root), hidden=str(hidden)), "utf-8")
        done = run_entry(root / "run_autograder", AUTOGRADER_ROOT=str(root),
                         GRADE_BIN=str(grade_at_tier(tmp_path, "process")))
        assert done.returncode == 0, done.stderr
        text = (root / "results" / "results.json").read_text("utf-8")
        data = valid(json.loads(text), GRADESCOPE_SCHEMA)
        assert data["extra_data"]["sandbox"] == "process"
        assert "LEAK" not in text, data["output"][-1500:]
        assert "DENIED" in text  # the attack ran, and its prints reached the results
        secrets = set(re.findall(r"-?\d+\.\d{8,}", (hidden / "references.json").read_text("utf-8")))
        assert secrets and not [number for number in secrets if number in text]
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


@pytest.mark.slow
def test_an_entry_point_that_cannot_hide_the_hidden_part_grades_nothing(tmp_path, fake_wheel):
    # No uid of its own and no namespaces (the "none" tier here; a grader that is not root, without user
    # namespaces, at the process tier): the submission would run as the user who owns the references.
    package = packaging.gradescope_package("ex03", tmp_path / "autograder.zip", fake_wheel)
    root = gradescope_root(tmp_path, package)
    hidden = root / "source" / "course" / "ex03" / "hidden"
    (root / "submission" / "ex03.py").write_text(THIEF.format(root=str(root), hidden=str(hidden)), "utf-8")
    done = run_entry(root / "run_autograder", AUTOGRADER_ROOT=str(root), GRADE_BIN=str(grade_at_tier(tmp_path, "none")))
    assert done.returncode == 3 and "nothing was graded" in done.stderr
    text = (root / "results" / "results.json").read_text("utf-8")
    data = valid(json.loads(text), GRADESCOPE_SCHEMA)
    assert data["score"] == 0 and data["extra_data"]["status"] == "hidden-unprotected"
    assert len(data["output"].splitlines()) == 1 and "hidden checks" in data["output"]
    assert "LEAK" not in text and "DENIED" not in text  # the submission never ran


def test_hidden_exposure_by_tier(tmp_path):
    from grader.lms import autograder as lms

    hidden = tmp_path / "course" / "ex03" / "hidden"
    hidden.mkdir(parents=True)
    (hidden / "references.json").write_text("{}", "utf-8")
    (hidden / "references.json").chmod(0o644)
    assert lms.hidden_exposure(tmp_path / "nothing", {"tier": "process"}) is None
    assert lms.hidden_exposure(hidden, {"tier": "namespaces", "userns": True}) is None  # not in its view
    assert "grader's user" in lms.hidden_exposure(hidden, {"tier": "process", "student_uid": None})
    if os.geteuid() == 0:
        assert lms.hidden_exposure(hidden, {"tier": "process", "student_uid": 2_000_000_123}) is None
        assert stat.S_IMODE((hidden / "references.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(hidden.stat().st_mode) == 0o700


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the process tier gives a uid of its own only to a root grader")
def test_prairielearn_hidden_references_copied_readable_are_made_owner_only_before_grading(tmp_path, fake_wheel):
    # PrairieLearn copies tests/ from the course's git repository, which keeps no modes: 0644, as shipped before.
    question = packaging.prairielearn_package("ex03", tmp_path / "question", fake_wheel)
    base = Path(tempfile.mkdtemp(prefix="grader-prairielearn-"))
    try:
        base.chmod(0o755)
        root = base / "grade"
        shutil.copytree(question / "tests", root / "tests")
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() or path.name == "run.sh" else 0o644)
        (root / "student").mkdir(mode=0o755)
        hidden = root / "tests" / "course" / "ex03" / "hidden"
        (root / "student" / "ex03.py").write_text(THIEF.format(root=str(root), hidden=str(hidden)), "utf-8")
        done = run_entry(root / "tests" / "run.sh", PL_GRADE_ROOT=str(root),
                         GRADE_BIN=str(grade_at_tier(tmp_path, "process")))
        assert done.returncode == 0, done.stderr
        text = (root / "results" / "results.json").read_text("utf-8")
        data = valid(json.loads(text), PRAIRIELEARN_SCHEMA)
        assert data["gradable"] is True
        assert "LEAK" not in text, text[-1500:]
        assert "DENIED" in text
        assert stat.S_IMODE(hidden.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in hidden.iterdir())
    finally:
        shutil.rmtree(base, ignore_errors=True)
