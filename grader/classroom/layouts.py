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

Names are data from the outside, whatever their bytes. Patterns match a name whole (`fullmatch`: `$`
would let `submission_1\n` through) and ids are ASCII digits. A student whose name is not printable text
(bytes that are not UTF-8, as unzip leaves a Windows zip's `jos\xe9`; a newline; an escape sequence) is
graded under `safe_key`'s printable id, the same in every run, and listed in `problems`; every path this
module reports is printable (sanitize.name). Gradescope's metadata is read without YAML aliases, within a
size, and only as strings of bounded length.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from grader.classroom.gradebook import CellStatus
from grader.course import exercises, filenames
from grader.model import sanitize

SUFFIXES = (".py", ".ipynb")
GRADESCOPE_METADATA = "submission_metadata.yml"
# Class-level files and folders under OUT: no student may be called so, or their reports would collide.
RESERVED = frozenset({"gradebook.csv", "canvas.csv", "moodle.csv", "summary.json", "roster.json", "class.html",
                      "similarity.json", "similarity.html"})
MAX_FILES_PER_STUDENT = 200  # entries listed one by one; beyond that, one line says how many more
MAX_METADATA_BYTES = 8 << 20  # submission_metadata.yml: ~30,000 submissions; parsed, ~45 bytes per byte of YAML
MAX_FIELD_CHARS = 200  # a submitter's name, sid or email
MAX_SUBMITTERS = 20  # a Gradescope group

# Always matched whole (fullmatch), ids in ASCII digits only.
CANVAS_FILE = re.compile(r"(?P<name>[^_]+)_(?P<late>late_)?(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)",
                         re.IGNORECASE | re.ASCII | re.DOTALL)
CANVAS_REUPLOAD = re.compile(r"(?P<stem>.+?)-\d+", re.ASCII)  # Canvas renames a second `ex03.py` to `ex03-1.py`
MOODLE_FOLDER = re.compile(r"(?P<name>.+)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)_",
                           re.ASCII | re.DOTALL)
GRADESCOPE_FOLDER = re.compile(r"submission_(?P<id>\d+)", re.ASCII)


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
    problems: list[Skipped] = field(default_factory=list)  # graded, but a name or the metadata was not usable

    def skip(self, root: Path, path: Path, reason: str, student: str | None = None) -> None:
        self.skipped.append(Skipped(_relative(root, path), reason, student))

    def problem(self, root: Path, path: Path, reason: str, student: str | None = None) -> None:
        self.problems.append(Skipped(_relative(root, path), reason, student))


def _relative(root: Path, path: Path) -> str:
    """The path as shown in the summary: relative to the class folder, and printable (sanitize.name)."""
    try:
        return sanitize.name(str(path.relative_to(root)))
    except ValueError:
        return sanitize.name(str(path))


def safe_key(raw: str) -> str:
    """The name a student is known by under OUT and in the gradebook: `raw` itself when it is printable
    text, else its printable form and a short hash of its bytes (`jos\\xe9~1b2c3d4e`): the same in every
    run, a valid folder name, UTF-8 in every file, and apart from any other name."""
    if raw.isprintable():
        return raw
    data = raw.encode("utf-8", "surrogateescape" if _escaped_bytes_only(raw) else "surrogatepass")
    return f"{sanitize.name(raw)}~{hashlib.sha256(data).hexdigest()[:8]}"


def _escaped_bytes_only(raw: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in raw)


def is_safe_key(name: str) -> bool:
    """Whether a folder under OUT can be a student's (an older grader may have left one that is not)."""
    return name.isprintable() and _student_key_problem(name) is None


Reader = Callable[[Path, "ClassFolder", "_Sorter", "Path | None"], None]


class Entries:
    """A class folder's top level as detection sees it (OUT and hidden entries left out), listed once, when asked."""

    def __init__(self, directory: Path, out: Path | None):
        self.directory, self._skip = directory, Path(out).resolve() if out is not None else None

    @cached_property
    def all(self) -> list[Path]:
        return [p for p in self.directory.iterdir()
                if not p.name.startswith(".") and (self._skip is None or p.resolve() != self._skip)]

    @cached_property
    def folders(self) -> list[Path]:
        return [p for p in self.all if p.is_dir() and not p.is_symlink()]

    @cached_property
    def files(self) -> list[Path]:
        return [p for p in self.all if not p.is_dir()]


@dataclass(frozen=True)
class Layout:
    """One way a class folder is laid out: its reader and how to recognise it (None: the fallback)."""

    name: str
    read: Reader
    recognise: Callable[[Entries], bool] | None
    priority: int  # detection asks the recognisers from the lowest priority up


LAYOUT_REGISTRY: dict[str, Layout] = {}  # name -> layout, in the order `--layout` lists them


def layout(name: str, recognise: Callable[[Entries], bool] | None = None, priority: int = 0) -> Callable[[Any], Any]:
    """Register a class-folder reader under `name` (a `--layout` choice); `recognise` makes `auto` pick it."""
    def register(read: Reader) -> Reader:
        LAYOUT_REGISTRY[name] = Layout(name, read, recognise, priority)
        return read
    return register


def detect(directory: Path, out: Path | None = None) -> str:
    """The layout of a class folder: the export whose marks it carries, else `folders` (OUT not counted)."""
    entries = Entries(Path(directory), out)
    candidates = sorted((lay for lay in LAYOUT_REGISTRY.values() if lay.recognise), key=lambda lay: lay.priority)
    return next((lay.name for lay in candidates if lay.recognise and lay.recognise(entries)), "folders")


def read(directory: Path, wanted: Sequence[str] | None = None, layout: str = "auto",
         out: Path | None = None) -> ClassFolder:
    """Read the class folder; `wanted` limits the exercises (others are listed as not asked for)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LayoutError(f"no such directory: {directory}")
    chosen = detect(directory, out) if layout == "auto" else layout
    if chosen not in LAYOUT_REGISTRY:
        raise LayoutError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    found = ClassFolder(chosen)
    reader = LAYOUT_REGISTRY[chosen].read
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
            if lowered in SUFFIXES and exercises.EXERCISE_ID.fullmatch(stem.lower()):
                return None, f"wrong case: name it {stem.lower()}{lowered}"
            return None, "not an exercise file (expected exNN.py or exNN.ipynb)"
        suffix = f".{suffix}"
        if not exercises.EXERCISE_ID.fullmatch(stem):
            if exercises.EXERCISE_ID.fullmatch(stem.lower()):
                return None, f"wrong case: name it {stem.lower()}{suffix}"
            return None, "not an exercise file (expected exNN.py or exNN.ipynb)"
        if stem not in self.known:
            return stem, f"unknown exercise {stem} (this course has {', '.join(sorted(self.known))})"
        if self.wanted is not None and stem not in self.wanted:
            return stem, f"{stem} not asked for (--exercise)"
        return stem, None


def _take(root: Path, found: ClassFolder, sorter: _Sorter, student: str, path: Path, name: str) -> None:
    """One file of one student: to grade (a near-miss name such as `Ex01.py` with a note), or listed with why."""
    near = filenames.exercise_of(name, sorter.known)
    name = f"{near.exercise}.{name.rpartition('.')[2].lower()}" if near is not None else name
    exercise, reason = sorter.exercise_of(name)
    if near is not None and reason is None:
        found.problem(root, path, near.note, student)  # withdrawn below if another file is graded instead
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
    dropped = _relative(root, drop)
    found.problems = [p for p in found.problems if not (p.path == dropped and p.student == student)]


def _reupload_rank(name: str) -> int:
    stem = name.rpartition(".")[0]
    match = re.search(r"(?:-|_| ?\()(\d+)\)?\Z", stem, re.ASCII)
    return int(match.group(1)) if match else 0


def _student_key_problem(key: str) -> str | None:
    if key in RESERVED:
        return CellStatus.RESERVED_NAME
    if key.startswith(".") or not key or "/" in key or "\x00" in key:
        return CellStatus.RESERVED_NAME
    return None


def _add_student(root: Path, found: ClassFolder, student: Student, path: Path, raw: str | None = None,
                 listed_as: Path | None = None) -> bool:
    """Register a student; False (and a status) when their folder is a link or their name is reserved.

    `raw`: the name as found, listed when `student.key` (its safe_key) is not the name itself, at
    `listed_as` (default: `path`)."""
    if student.key in found.students or student.key in found.refused:
        found.skip(root, path, f"a second folder for {student.key!r}: not graded", student.key)
        return False
    problem = _student_key_problem(student.key) or (CellStatus.REFUSED_LINK if path.is_symlink() else None)
    if problem is not None:
        found.refused[student.key] = problem
        reason = ("a symbolic link: refused, never followed" if problem == CellStatus.REFUSED_LINK else
                  f"{student.key!r} is a name the grader keeps for its own files: rename the folder")
        found.skip(root, path, reason, student.key)
        return False
    if raw is not None and raw != student.key:
        found.problem(root, listed_as or path, f"the name is not printable text (bytes that are not UTF-8, or control "
                                  f"characters): graded as {student.key}", student.key)
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
        if entry.is_dir() and not entry.is_symlink() and not exercises.EXERCISE_ID.fullmatch(entry.stem):
            found.skip(root, entry, "a folder: only files directly in the student's folder are graded", key)
            continue
        _take(root, found, sorter, key, entry, entry.name)
    _take_the_only_one(root, found, sorter, key, entries)


def _take_the_only_one(root: Path, found: ClassFolder, sorter: _Sorter, key: str, entries: list[Path]) -> None:
    """With one exercise asked for (`--exercise ex03`) and no file named for it, the folder's one .py/.ipynb
    (`my_ex03_final.py`) is that exercise's, with a note; the listing of it as skipped is withdrawn."""
    exercise = next(iter(sorter.wanted)) if sorter.wanted and len(sorter.wanted) == 1 else ""
    files = [e for e in entries if e.is_file() and not e.is_symlink() and filenames.split(e.name) is not None]
    if exercise not in sorter.known or found.files.get(key) or len(files) != 1:
        return
    listed = _relative(root, files[0])
    found.skipped = [s for s in found.skipped if not (s.path == listed and s.student == key)]
    found.files.setdefault(key, {})[exercise] = files[0]
    found.mentioned.add(exercise)
    found.problem(root, files[0], filenames.only_file_note(exercise), key)


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


@layout("folders")
def _read_folders(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    for entry in _top_level(directory, found, skip_out):
        if not entry.is_dir() and not entry.is_symlink():
            found.skip(directory, entry, "a file beside the student folders (expected DIR/<student>/<EX>.py)")
            continue
        key = safe_key(entry.name)
        if _add_student(directory, found, Student(key), entry, entry.name):
            _list_files(directory, found, sorter, key, entry)


def _looks_like_canvas(entries: Entries) -> bool:
    files, folders = entries.files, entries.folders
    return bool(files) and not folders and sum(bool(CANVAS_FILE.fullmatch(p.name)) for p in files) * 2 > len(files)


@layout("canvas", _looks_like_canvas, priority=2)
def _read_canvas(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    late: dict[str, set[str]] = {}
    for entry in _top_level(directory, found, skip_out):
        match = CANVAS_FILE.fullmatch(entry.name)
        if match is None:
            found.skip(directory, entry, "not named as Canvas names a submission (name_userid_fileid_file)")
            continue
        raw = f"{match['name']}_{match['user']}"
        key = safe_key(raw)
        if key not in found.students and key not in found.refused:
            student = Student(key, name=sanitize.name(match["name"]), canvas_id=match["user"])
            if not _add_student(directory, found, student, directory, raw, listed_as=entry):
                continue
        if key in found.refused:
            found.skip(directory, entry, "its student is refused", key)
            continue
        original = match["file"]
        stem, dot, suffix = original.rpartition(".")
        reupload = CANVAS_REUPLOAD.fullmatch(stem) if dot else None
        if reupload and exercises.EXERCISE_ID.fullmatch(reupload["stem"]):
            original = f"{reupload['stem']}.{suffix}"
        _take(directory, found, sorter, key, entry, original)
        exercise = found.files.get(key, {})
        if match["late"]:
            late.setdefault(key, set()).update(e for e, p in exercise.items() if p == entry)
    for key, exercise_ids in late.items():
        student = found.students[key]
        found.students[key] = Student(**{**student.__dict__, "late": tuple(sorted(exercise_ids))})


def _looks_like_moodle(entries: Entries) -> bool:
    folders = entries.folders
    return bool(folders) and sum(bool(MOODLE_FOLDER.fullmatch(p.name)) for p in folders) * 2 > len(folders)


@layout("moodle", _looks_like_moodle, priority=1)
def _read_moodle(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    for entry in _top_level(directory, found, skip_out):
        match = MOODLE_FOLDER.fullmatch(entry.name)
        if match is None or (not entry.is_dir() and not entry.is_symlink()):
            found.skip(directory, entry, "not a Moodle submission folder (Full Name_id_assignsubmission_file_)")
            continue
        if match["plugin"] != "file":
            found.skip(directory, entry, f"Moodle's {match['plugin']} submission, not a file upload")
            continue
        raw = f"{match['name']}_{match['participant']}"
        key = safe_key(raw)
        student = Student(key, name=sanitize.name(match["name"]), moodle_participant=match["participant"])
        if _add_student(directory, found, student, entry, raw):
            _list_files(directory, found, sorter, key, entry)


@layout("gradescope", lambda entries: (entries.directory / GRADESCOPE_METADATA).is_file(), priority=0)
def _read_gradescope(directory: Path, found: ClassFolder, sorter: _Sorter, skip_out: Path | None) -> None:
    metadata = _gradescope_metadata(directory, found)
    for entry in _top_level(directory, found, skip_out):
        if entry.name == GRADESCOPE_METADATA:
            continue
        match = GRADESCOPE_FOLDER.fullmatch(entry.name)
        if match is None or (not entry.is_dir() and not entry.is_symlink()):
            found.skip(directory, entry, "not a Gradescope submission folder (submission_<id>/)")
            continue
        record = {} if metadata is None else _gradescope_record(directory, found, entry.name, metadata)
        if record is None:
            found.skip(directory, entry, f"not in {GRADESCOPE_METADATA}: whose it is is unknown")
            continue
        if _add_student(directory, found, Student(entry.name, **record), entry):
            _list_files(directory, found, sorter, entry.name, entry)


class _Refused(ValueError):
    """The metadata is not read: why, for the listed problem."""


def _gradescope_metadata(directory: Path, found: ClassFolder) -> dict[Any, Any] | None:
    """The metadata as a mapping, or None (listed) when it cannot be read safely: then every submission
    folder is graded under its own name, and the import files lack the names and SIDs.

    A YAML alias repeats a whole subtree by reference: nested ten deep, a kilobyte stands for a billion
    strings (and merge keys copy them), so a document that uses one is not read at all."""
    try:
        import yaml
    except ModuleNotFoundError:
        raise LayoutError("reading a Gradescope export needs PyYAML: pip install 'dl-grader[instructor]'") from None
    path = directory / GRADESCOPE_METADATA
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_METADATA_BYTES + 1)
        if len(raw) > MAX_METADATA_BYTES:
            raise _Refused(f"larger than {MAX_METADATA_BYTES >> 20} MiB")
        text = raw.decode("utf-8")
        for event in yaml.parse(text, Loader=loader):  # events only: nothing is built yet
            if isinstance(event, yaml.AliasEvent):
                raise _Refused("it uses a YAML alias (*name), which this grader never expands")
        data = yaml.load(text, Loader=loader)  # a safe loader, and no alias left to expand
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError, _Refused) as exc:
        why = sanitize.name(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        found.problem(directory, path, f"not read ({why}): submissions are named by their folder")
        return None
    if not isinstance(data, dict):
        found.problem(directory, path, "not a Gradescope submission_metadata.yml (no submission_<id> keys): "
                                       "submissions are named by their folder")
        return None
    return data


def _gradescope_record(directory: Path, found: ClassFolder, folder: str,
                       metadata: dict[Any, Any]) -> dict[str, str] | None:
    """The folder's submitters' name, sid and email (a group's joined with '; '); None when not listed.

    Only strings (or a number, for a SID) of at most MAX_FIELD_CHARS printable characters are taken;
    anything else is left out and listed."""
    entry = metadata.get(folder)
    submitters = entry.get(":submitters") if isinstance(entry, dict) else None
    if not isinstance(submitters, list):
        return None
    fields = {"name": ":name", "sis_id": ":sid", "email": ":email"}
    values: dict[str, list[str]] = {field: [] for field in fields}
    for person in submitters[:MAX_SUBMITTERS]:
        if not isinstance(person, dict):
            continue
        for field_name, key in fields.items():
            value = person.get(key)
            if value is None or value == "":
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and len(value) <= MAX_FIELD_CHARS and value.isprintable():
                values[field_name].append(value)
            else:
                what = (f"{type(value).__name__}, not text" if not isinstance(value, str) else
                        "too long" if len(value) > MAX_FIELD_CHARS else "not printable text")
                found.problem(directory, directory / GRADESCOPE_METADATA,
                              f"{sanitize.name(folder)}: its {key} is left out ({what})", folder)
    return {field_name: "; ".join(found_values) for field_name, found_values in values.items()}


LAYOUTS = ("auto", *LAYOUT_REGISTRY)  # the `--layout` choices: every registered layout, in the order registered
