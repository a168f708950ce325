"""Reading a class folder as the LMS exported it: which file is whose, for which exercise, and why not.

Four layouts (`detect` picks one; `grade batch --layout` forces it):

- `folders`: DIR/<student>/<EX>.py|.ipynb, the grader's own layout.
- `canvas`: Canvas's "Download Submissions": one flat folder of files named
  `<name>_<user id>_<attachment id>_<file name>`, with `late_` before the user id for a late one
  (`lastfirst_late_12345_67890_ex03.py`). Canvas appends `-1`, `-2` to a re-uploaded file's name
  (`ex03-1.py`). The user id is what Canvas's gradebook import matches on (its `ID` column).
- `moodle`: Moodle's "Download all submissions": a folder per participant,
  `<Full Name>_<participant id>_assignsubmission_file_/`, holding the files as uploaded
  (`..._assignsubmission_onlinetext_/` holds online text, never code). Moodle's grading worksheet
  matches on `Participant <participant id>`.
- `gradescope`: Gradescope's "Export Submissions": `submission_metadata.yml` beside one
  `submission_<id>/` folder per submission; the YAML names each folder's submitters (`:name:`,
  `:sid:`, `:email:`).

Every entry of the class folder ends up either as a file to grade or in `skipped` with the reason
(wrong case, unknown exercise, duplicate, not a file, a link, a reserved name...): nothing is dropped in
silence. Links are refused, never followed: a student folder linked to `solutions/` or to a neighbour's
folder would otherwise be graded as theirs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import exercises

LAYOUTS = ("auto", "folders", "canvas", "moodle", "gradescope")
SUFFIXES = (".py", ".ipynb")
GRADESCOPE_METADATA = "submission_metadata.yml"
# Class-level files and folders under OUT: no student may be called so, or their reports would collide.
RESERVED = frozenset({"gradebook.csv", "canvas.csv", "moodle.csv", "summary.json", "roster.json", "class.html",
                      "similarity.json", "similarity.html"})
MAX_FILES_PER_STUDENT = 200  # entries listed one by one; beyond that, one line says how many more

CANVAS_FILE = re.compile(r"^(?P<name>[^_]+)_(?P<late>late_)?(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$",
                         re.IGNORECASE)
CANVAS_REUPLOAD = re.compile(r"^(?P<stem>.+?)-\d+$")  # Canvas renames a second `ex03.py` to `ex03-1.py`
MOODLE_FOLDER = re.compile(r"^(?P<name>.+)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)_$")
GRADESCOPE_FOLDER = re.compile(r"^submission_(?P<id>\d+)$")


class LayoutError(ValueError):
    """The class folder cannot be read as the layout asked for: a usage error, one line."""


@dataclass(frozen=True)
class Student:
    """Who a student is, as far as the export says: `key` names their folder under OUT."""

    key: str
    name: str = ""
    canvas_id: str = ""  # Canvas user id: the `ID` column of Canvas's gradebook import
    sis_id: str = ""  # an institution's id (Gradescope's SID): Canvas's `SIS User ID`
    moodle_participant: str = ""  # Moodle's grading worksheet identifier: `Participant <n>`
    email: str = ""
    late: tuple[str, ...] = ()  # exercises submitted late (Canvas marks them)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v and k != "key"}
        if self.late:
            data["late"] = list(self.late)
        return data


@dataclass(frozen=True)
class Skipped:
    """An entry of the class folder that is not graded, and why (for the summary)."""

    path: str  # relative to the class folder
    reason: str
    student: str | None = None


@dataclass
class ClassFolder:
    """What discovery found: per student, the file for each exercise; and everything it did not take."""

    layout: str
    students: dict[str, Student] = field(default_factory=dict)
    files: dict[str, dict[str, Path]] = field(default_factory=dict)  # student key -> exercise -> file
    refused: dict[str, str] = field(default_factory=dict)  # student key -> status (a link, a reserved name)
    skipped: list[Skipped] = field(default_factory=list)
    mentioned: set[str] = field(default_factory=set)  # exercises seen in file names (even when refused)

    def skip(self, root: Path, path: Path, reason: str, student: str | None = None) -> None:
        self.skipped.append(Skipped(_relative(root, path), reason, student))


def _relative(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def detect(directory: Path, out: Path | None = None) -> str:
    """The layout of a class folder: the export whose marks it carries, else `folders` (OUT not counted)."""
    directory = Path(directory)
    if (directory / GRADESCOPE_METADATA).is_file():
        return "gradescope"
    skip = Path(out).resolve() if out is not None else None
    entries = [p for p in directory.iterdir() if not p.name.startswith(".") and (skip is None or p.resolve() != skip)]
    folders = [p for p in entries if p.is_dir() and not p.is_symlink()]
    if folders and sum(bool(MOODLE_FOLDER.match(p.name)) for p in folders) * 2 > len(folders):
        return "moodle"
    files = [p for p in entries if not p.is_dir()]
    if files and not folders and sum(bool(CANVAS_FILE.match(p.name)) for p in files) * 2 > len(files):
        return "canvas"
    return "folders"


def read(directory: Path, wanted: Sequence[str] | None = None, layout: str = "auto",
         out: Path | None = None) -> ClassFolder:
    """Read the class folder; `wanted` limits the exercises (others are listed as not asked for)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LayoutError(f"no such directory: {directory}")
    chosen = detect(directory, out) if layout == "auto" else layout
    if chosen not in LAYOUTS[1:]:
        raise LayoutError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    found = ClassFolder(chosen)
    reader = {"folders": _read_folders, "canvas": _read_canvas, "moodle": _read_moodle,
              "gradescope": _read_gradescope}[chosen]
    skip_out = Path(out).resolve() if out is not None else None
    reader(directory, found, _Sorter(set(wanted) if wanted else None), skip_out)
    return found


class _Sorter:
    """Decides, for one file name, which exercise it is for, or why it is none."""

    def __init__(self, wanted: set[str] | None):
        self.known = set(exercises.exercise_ids())
        self.wanted = wanted

    def exercise_of(self, name: str) -> tuple[str | None, str | None]:
        """(exercise, None) for a file to grade, else (exercise or None, the reason it is not graded)."""
        stem, dot, suffix = name.rpartition(".")
        if not dot or f".{suffix}" not in SUFFIXES:
            lowered = f".{suffix.lower()}" if dot else ""
            if lowered in SUFFIXES and exercises.EXERCISE_ID.match(stem.lower()):
                return None, f"wrong case: name it {stem.lower()}{lowered}"
            return None, "not an exercise file (expected exNN.py or exNN.ipynb)"
        suffix = f".{suffix}"
        if not exercises.EXERCISE_ID.match(stem):
            if exercises.EXERCISE_ID.match(stem.lower()):
                return None, f"wrong case: name it {stem.lower()}{suffix}"
            return None, "not an exercise file (expected exNN.py or exNN.ipynb)"
        if stem not in self.known:
            return stem, f"unknown exercise {stem} (this course has {', '.join(sorted(self.known))})"
        if self.wanted is not None and stem not in self.wanted:
            return stem, f"{stem} not asked for (--exercise)"
        return stem, None


def _take(root: Path, found: ClassFolder, sorter: _Sorter, student: str, path: Path, name: str) -> None:
    """One file of one student: to grade, or listed with why."""
    exercise, reason = sorter.exercise_of(name)
    if exercise in sorter.known:
        found.mentioned.add(exercise)
    if reason is not None:
        found.skip(root, path, reason, student)
        return
    files = found.files.setdefault(student, {})
    current = files.get(exercise)
    if current is None:
        files[exercise] = path  # a link or a folder named ex03.py is kept: grading gives it a status
        return
    # Two files for one exercise: .py before .ipynb (as single mode does), else the one named last
    # (Canvas's ex03-2.py is newer than ex03-1.py); the other is listed.
    drop, keep = sorted((current, path), key=lambda p: (p.suffix == ".py", _reupload_rank(p.name), p.name))
    files[exercise] = keep
    found.skip(root, drop, f"duplicate for {exercise}: {_relative(root, keep)} is graded instead", student)


def _reupload_rank(name: str) -> int:
    stem = name.rpartition(".")[0]
    match = re.search(r"-(\d+)$", stem)
    return int(match.group(1)) if match else 0


def _student_key_problem(key: str) -> str | None:
    if key in RESERVED:
        return "reserved-name"
    if key.startswith(".") or not key or "/" in key or "\x00" in key:
        return "reserved-name"
    return None


def _add_student(root: Path, found: ClassFolder, student: Student, path: Path) -> bool:
    """Register a student; False (and a status) when their folder is a link or their name is reserved."""
    if student.key in found.students or student.key in found.refused:
        found.skip(root, path, f"a second folder for {student.key!r}: not graded", student.key)
        return False
    problem = _student_key_problem(student.key)
    if problem is None and path.is_symlink():
        problem = "refused-link"
    if problem is not None:
        found.refused[student.key] = problem
        reason = ("a symbolic link: refused, never followed" if problem == "refused-link" else
                  f"{student.key!r} is a name the grader keeps for its own files: rename the folder")
        found.skip(root, path, reason, student.key)
        return False
    found.students[student.key] = student
    found.files.setdefault(student.key, {})
    return True


def _list_files(root: Path, found: ClassFolder, sorter: _Sorter, key: str, folder: Path) -> None:
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        found.skip(root, folder, f"cannot be listed ({exc.strerror or exc})", key)
        return
    for count, entry in enumerate(entries):
        if count == MAX_FILES_PER_STUDENT:
            found.skip(root, folder, f"{len(entries) - count} more entries not examined", key)
            break
        if entry.is_dir() and not entry.is_symlink() and not exercises.EXERCISE_ID.match(entry.stem):
            found.skip(root, entry, "a folder: only files directly in the student's folder are graded", key)
            continue
        _take(root, found, sorter, key, entry, entry.name)


def _top_level(directory: Path, found: ClassFolder, skip_out: Path | None) -> list[Path]:
    """The class folder's entries, minus OUT and hidden ones (which are listed)."""
    entries = []
    for entry in sorted(directory.iterdir()):
        if skip_out is not None and entry.resolve() == skip_out and not entry.is_symlink():
            continue  # our own output folder
        if entry.name.startswith("."):
            found.skip(directory, entry, "hidden (its name starts with '.')")
            continue
        entries.append(entry)
    return entries


def _read_folders(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    for entry in _top_level(directory, found, skip_out):
        if not entry.is_dir() and not entry.is_symlink():
            found.skip(directory, entry, "a file beside the student folders (expected DIR/<student>/<EX>.py)")
            continue
        if _add_student(directory, found, Student(entry.name), entry):
            _list_files(directory, found, sorter, entry.name, entry)


def _read_canvas(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    late: dict[str, set[str]] = {}
    for entry in _top_level(directory, found, skip_out):
        match = CANVAS_FILE.match(entry.name)
        if match is None:
            found.skip(directory, entry, "not named as Canvas names a submission (name_userid_fileid_file)")
            continue
        key = f"{match['name']}_{match['user']}"
        if key not in found.students and key not in found.refused:
            student = Student(key, name=match["name"], canvas_id=match["user"])
            if not _add_student(directory, found, student, directory):
                continue
        if key in found.refused:
            found.skip(directory, entry, "its student is refused", key)
            continue
        original = match["file"]
        stem, dot, suffix = original.rpartition(".")
        reupload = CANVAS_REUPLOAD.match(stem) if dot else None
        if reupload and exercises.EXERCISE_ID.match(reupload["stem"]):
            original = f"{reupload['stem']}.{suffix}"
        _take(directory, found, sorter, key, entry, original)
        exercise = found.files.get(key, {})
        if match["late"]:
            late.setdefault(key, set()).update(e for e, p in exercise.items() if p == entry)
    for key, exercise_ids in late.items():
        student = found.students[key]
        found.students[key] = Student(**{**student.__dict__, "late": tuple(sorted(exercise_ids))})


def _read_moodle(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    for entry in _top_level(directory, found, skip_out):
        match = MOODLE_FOLDER.match(entry.name)
        if match is None or (not entry.is_dir() and not entry.is_symlink()):
            found.skip(directory, entry, "not a Moodle submission folder (Full Name_id_assignsubmission_file_)")
            continue
        if match["plugin"] != "file":
            found.skip(directory, entry, f"Moodle's {match['plugin']} submission, not a file upload")
            continue
        key = f"{match['name']}_{match['participant']}"
        student = Student(key, name=match["name"], moodle_participant=match["participant"])
        if _add_student(directory, found, student, entry):
            _list_files(directory, found, sorter, key, entry)


def _read_gradescope(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    metadata = _gradescope_metadata(directory / GRADESCOPE_METADATA)
    for entry in _top_level(directory, found, skip_out):
        if entry.name == GRADESCOPE_METADATA:
            continue
        match = GRADESCOPE_FOLDER.match(entry.name)
        if match is None or (not entry.is_dir() and not entry.is_symlink()):
            found.skip(directory, entry, "not a Gradescope submission folder (submission_<id>/)")
            continue
        record = metadata.get(entry.name)
        if record is None:
            found.skip(directory, entry, f"not in {GRADESCOPE_METADATA}: whose it is is unknown")
            continue
        if _add_student(directory, found, Student(entry.name, **record), entry):
            _list_files(directory, found, sorter, entry.name, entry)


def _gradescope_metadata(path: Path) -> dict[str, dict[str, str]]:
    """Folder name -> the first submitter's name, sid and email (group members are joined with '; ')."""
    try:
        import yaml
    except ModuleNotFoundError:
        raise LayoutError("reading a Gradescope export needs PyYAML: pip install 'dl-grader[instructor]'") from None
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LayoutError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{path} is not a Gradescope submission_metadata.yml (no submission_<id> keys)")
    records = {}
    for folder, entry in data.items():
        submitters = entry.get(":submitters") if isinstance(entry, dict) else None
        if not isinstance(submitters, list):
            continue
        people = [s for s in submitters if isinstance(s, dict)]
        records[str(folder)] = {
            "name": "; ".join(str(s.get(":name") or "") for s in people),
            "sis_id": "; ".join(str(s.get(":sid") or "") for s in people).strip("; "),
            "email": "; ".join(str(s.get(":email") or "") for s in people).strip("; "),
        }
    return records
