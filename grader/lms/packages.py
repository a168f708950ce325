"""Autograders ready to upload: a Gradescope autograder zip and a PrairieLearn question folder.

Both carry the grader as a wheel (built from this checkout, or the one given), `constraints.txt` (torch
pinned to the CPU build) and the exercise's course folder *with its hidden checks*, so the platform
grades exactly as `grade EX` does here, hidden checks included. Neither is ever given to students.

Gradescope ("Autograder Specifications"): the zip holds `setup.sh` and `run_autograder` at its root;
Gradescope unpacks it to /autograder/source, runs setup.sh once when it builds the image, then
/autograder/run_autograder for each submission, with the files in /autograder/submission, and reads
/autograder/results/results.json.

PrairieLearn ("External grading"): the question folder holds info.json (`gradingMethod: External` and
`externalGradingOptions`: image, entrypoint, timeout), question.html (the statement, an editor holding
the stub as the student's file, the results element), the stub itself, and tests/, which PrairieLearn
copies to /grade/tests; the student's files arrive in /grade/student and results go to
/grade/results/results.json. External graders run without network, so the image must already hold
the grader: tests/Dockerfile builds one from the same wheel.

Each entry point takes its root from an environment variable (AUTOGRADER_ROOT, PL_GRADE_ROOT) and the
`grade` executable from GRADE_BIN, so a test can play the platform's layout in a temporary folder.

The hidden part (`course/<EX>/hidden/`) is owner-only as shipped: 0700 folders and 0600 files in the zip's
entries (which unzip restores) and in the question folder, made so again by setup.sh, and checked (and
made so) by the entry point before it runs a submission (grader/lms/autograder.py, `hidden_exposure`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

from grader.course import exercises
from grader.grading.pipeline import DEFAULT_TIMEOUT_S

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
GRADESCOPE_ZIP = Path("autograder.zip")  # what Gradescope's Configure Autograder page uploads
PL_IMAGE = "your-dockerhub-user/dl-grader:latest"
PL_TIMEOUT_S = 120  # the whole container: start, import torch, grade
OWNER_ONLY_DIR, OWNER_ONLY_FILE = 0o700, 0o600  # the hidden part: the grader's user only


class PackagingError(RuntimeError):
    """The package cannot be built (no wheel, no hidden checks): one line for the CLI."""


def build_wheel(target: Path) -> Path:
    """Build the grader's wheel from this checkout into `target`; PackagingError when not in a checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise PackagingError("not a checkout of the grader (no pyproject.toml): pass --wheel dl_grader-*.whl")
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(target), str(root)], check=False, capture_output=True, text=True, timeout=600)
    wheels = sorted(target.glob("dl_grader-*.whl"))
    if done.returncode != 0 or not wheels:
        raise PackagingError(f"building the wheel failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return wheels[-1]


def _constraints() -> str:
    path = Path(__file__).resolve().parents[2] / "constraints.txt"
    try:
        return path.read_text("utf-8")
    except OSError:
        return "torch==2.13.0\n"


def _course_folder(exercise_id: str) -> Path:
    exercise = exercises.load(exercise_id)
    if not exercise.hidden_available:
        raise PackagingError(f"{exercise_id}'s hidden checks are not here (an installed wheel never has them): "
                             "package from the course's checkout")
    return exercise.folder


def _copy_course(exercise_id: str, target: Path) -> None:
    shutil.copytree(_course_folder(exercise_id), target / exercise_id,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    hidden = target / exercise_id / "hidden"
    for root, _dirs, files in os.walk(hidden):
        os.chmod(root, OWNER_ONLY_DIR)
        for name in files:
            os.chmod(os.path.join(root, name), OWNER_ONLY_FILE)



def _mode_in_package(relative: Path, is_dir: bool) -> int:
    """A course entry's mode in the zip: owner-only under hidden/, else readable."""
    if "hidden" in relative.parts:
        return OWNER_ONLY_DIR if is_dir else OWNER_ONLY_FILE
    return 0o755 if is_dir else 0o644


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04 base).
set -euo pipefail
cd /autograder/source
apt-get update -q
apt-get install -y -q python3.11 python3.11-venv
python3.11 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
# The pinned grader, with torch from the CPU index (constraints.txt pins it exactly).
/autograder/venv/bin/pip install -q -c constraints.txt --index-url {index} \\
    --extra-index-url https://pypi.org/simple ./{wheel} matplotlib
# The hidden checks: root's only (submissions run as a uid of their own, or in namespaces without them).
chown -R root:root course
find course -path '*/hidden*' -type d -exec chmod 0700 {{}} +
find course -path '*/hidden*' -type f -exec chmod 0600 {{}} +
/autograder/venv/bin/grade doctor || true
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission. AUTOGRADER_ROOT and GRADE_BIN let a test play the layout.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
GRADE="${{GRADE_BIN:-$ROOT/venv/bin/grade}}"
export GRADER_COURSE="$ROOT/source/course"
mkdir -p "$ROOT/results"
exec "$GRADE" gradescope {exercise} --submission "$ROOT/submission" \\
    --results "$ROOT/results/results.json" --timeout {timeout}
"""


def gradescope_package(exercise_id: str, out: Path = GRADESCOPE_ZIP, wheel: Path | None = None,
                       timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Write the Gradescope autograder zip to `out`; returns its path."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="grader-package-") as scratch:
        wheel = Path(wheel) if wheel else build_wheel(Path(scratch) / "wheel")
        if not wheel.is_file():
            raise PackagingError(f"no such wheel: {wheel}")
        course = Path(scratch) / "course"
        _copy_course(exercise_id, course)
        files = {
            "setup.sh": SETUP_SH.format(index=PYTORCH_CPU_INDEX, wheel=wheel.name),
            "run_autograder": RUN_AUTOGRADER.format(exercise=exercise_id, timeout=f"{timeout:g}"),
            "constraints.txt": _constraints(),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in files.items():
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o755 << 16  # setup.sh and run_autograder must be executable
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, text)
            archive.write(wheel, wheel.name)
            for path in sorted(course.rglob("*")):
                relative = path.relative_to(course)
                if path.is_dir():  # its own entry, so that unzip gives the hidden folder its mode
                    info = zipfile.ZipInfo(f"course/{relative}/")
                    info.external_attr = (0o040000 | _mode_in_package(relative, True)) << 16 | 0x10
                    archive.writestr(info, b"")
                elif path.is_file():
                    info = zipfile.ZipInfo.from_file(path, f"course/{relative}")
                    info.external_attr = (0o100000 | _mode_in_package(relative, False)) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, path.read_bytes())
    return out


RUN_SH = """#!/usr/bin/env bash
# PrairieLearn's entrypoint (/grade/tests/run.sh). PL_GRADE_ROOT and GRADE_BIN let a test play the layout.
set -uo pipefail
ROOT="${{PL_GRADE_ROOT:-/grade}}"
GRADE="${{GRADE_BIN:-grade}}"
export GRADER_COURSE="$ROOT/tests/course"
mkdir -p "$ROOT/results"
if ! command -v "$GRADE" >/dev/null 2>&1; then
  echo '{{"gradable": false, "score": 0, "message": "The grading image has no dl-grader: build it from tests/Dockerfile.", "tests": []}}' \\
    > "$ROOT/results/results.json"
  exit 0
fi
exec "$GRADE" prairielearn {exercise} --submission "$ROOT/student" \\
    --results "$ROOT/results/results.json" --timeout {timeout}
"""

DOCKERFILE = """# The external-grading image: PrairieLearn runs graders without network, so the grader is installed here.
#   docker build -t {image} tests/ && docker push {image}
FROM python:3.11-slim
COPY {wheel} constraints.txt /opt/dl-grader/
RUN pip install --no-cache-dir -c /opt/dl-grader/constraints.txt --index-url {index} \\
        --extra-index-url https://pypi.org/simple /opt/dl-grader/{wheel} matplotlib
"""

QUESTION_HTML = """<pl-question-panel>
<markdown>
{statement}
</markdown>
<p>Write your solution in <code>{exercise}.py</code> below and submit it; the grader runs it in a sandbox.</p>
</pl-question-panel>

<pl-file-editor file-name="{exercise}.py" ace-mode="ace/mode/python" source-file-name="{exercise}.py">
</pl-file-editor>

<pl-submission-panel>
<pl-external-grader-results></pl-external-grader-results>
<pl-file-preview></pl-file-preview>
</pl-submission-panel>
"""


def prairielearn_package(exercise_id: str, out: Path, wheel: Path | None = None, image: str = PL_IMAGE,
                         timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Write the PrairieLearn question folder `out` (it must not exist, or be empty); returns it."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PackagingError(f"{out} exists and is not empty")
    exercise = exercises.load(exercise_id)
    tests = out / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grader-package-") as scratch:
        wheel = Path(wheel) if wheel else build_wheel(Path(scratch) / "wheel")
        if not wheel.is_file():
            raise PackagingError(f"no such wheel: {wheel}")
        shutil.copy2(wheel, tests / wheel.name)
    (tests / "course").mkdir()
    _copy_course(exercise_id, tests / "course")
    (tests / "constraints.txt").write_text(_constraints(), "utf-8")
    run = tests / "run.sh"
    run.write_text(RUN_SH.format(exercise=exercise_id, timeout=f"{timeout:g}"), "utf-8")
    run.chmod(0o755)
    (tests / "Dockerfile").write_text(DOCKERFILE.format(image=image, wheel=wheel.name, index=PYTORCH_CPU_INDEX),
                                      "utf-8")
    info = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"dl-grader/{exercise_id}")),
        "title": f"{exercise_id}: {exercise.title}",
        "topic": "Gradient descent and autograd",
        "tags": ["dl-grader", exercise_id],
        "type": "v3",
        "singleVariant": True,
        "gradingMethod": "External",
        "externalGradingOptions": {"enabled": True, "image": image, "entrypoint": "/grade/tests/run.sh",
                                   "timeout": PL_TIMEOUT_S},
    }
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n", "utf-8")
    (out / "question.html").write_text(QUESTION_HTML.format(statement=exercise.statement.strip(),
                                                            exercise=exercise_id), "utf-8")
    (out / f"{exercise_id}.py").write_text(exercise.stub, "utf-8")
    return out
