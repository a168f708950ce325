"""Which exercise a file a student sent is for, when its name is not exactly `exNN.py` / `exNN.ipynb`.

Students send `Ex01.py` (a capital from their editor), `ex03 (1).py` (a browser's or Canvas's re-upload),
`ex03-1.py`, `ex3.py` (Gradescope's assignment names), or `my_ex03_final.py`. A name that is the exercise's
up to case, a re-upload counter or zero padding is that exercise's file; with the exercise given, a
folder's one .py/.ipynb is taken whatever its name. Every such choice comes with a note saying which file was
taken and why, for the summary the student or the teacher reads. Reading only: nothing here opens a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SUFFIXES = (".py", ".ipynb")
# A re-upload counter: `ex03 (1)` (browsers, Canvas), `ex03-1` (Canvas), `ex03_1`; ASCII digits only.
REUPLOAD = re.compile(r"(?P<stem>.+?)(?: ?\((?P<paren>\d{1,4})\)|[-_](?P<dash>\d{1,4}))", re.ASCII)
EXERCISE_NUMBER = re.compile(r"ex0*(?P<number>\d{1,3})", re.ASCII)


@dataclass(frozen=True)
class Taken:
    """A file taken for an exercise although its name is not `<exercise><suffix>`, and why."""

    exercise: str
    note: str  # "graded as ex03: ..."


def split(name: str) -> tuple[str, str] | None:
    """(stem, suffix in lower case) for a .py / .ipynb name in any case, else None."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or f".{suffix.lower()}" not in SUFFIXES:
        return None
    return stem, f".{suffix.lower()}"


def exercise_of(name: str, known: Iterable[str]) -> Taken | None:
    """The exercise a near-miss name is for (case, a re-upload counter, zero padding), or None.
    An exact name (`ex03.py`) is None too: it needs no note."""
    parts = split(name)
    if parts is None:
        return None
    stem, suffix = parts
    known = set(known)
    if f"{stem}{suffix}" == name and stem in known:
        return None
    reasons = []
    candidate = stem.lower()
    if candidate != stem:
        reasons.append("letters in another case")
    counter = REUPLOAD.fullmatch(candidate)
    if counter and _exercise(counter["stem"], known):
        candidate = counter["stem"]
        reasons.append(f"a re-upload counter ({stem[len(candidate):].strip()})")
    exercise = _exercise(candidate, known)
    if exercise is None:
        return None
    if exercise != candidate:
        reasons.append(f"{candidate} for {exercise}")
    if name.rpartition(".")[2] != suffix[1:]:
        reasons.append(f"the suffix {name.rpartition('.')[2]!r}")
    why = ", ".join(reasons) or "its name"
    return Taken(exercise, f"graded as {exercise}: the name differs from {exercise}{suffix} only by {why}")


def _exercise(stem: str, known: set[str]) -> str | None:
    if stem in known:
        return stem
    number = EXERCISE_NUMBER.fullmatch(stem)
    if number:
        padded = f"ex{int(number['number']):02d}"
        return padded if padded in known else None
    return None


def the_only_one(names: Sequence[str], exercise: str) -> Taken | None:
    """With the exercise given (`--exercise ex03`), a folder's one .py / .ipynb file, whatever its name
    (`my_ex03_final.py`); None when there are none or several (which one would be a guess)."""
    sources = [n for n in names if split(n) is not None]
    return Taken(exercise, only_file_note(exercise)) if len(sources) == 1 else None


def only_file_note(exercise: str) -> str:
    """The summary's note for a folder's only .py/.ipynb file taken for `exercise`."""
    return (f"graded as {exercise}: the only .py/.ipynb file in the folder (--exercise {exercise}), though not "
            f"named {exercise}.py")


def found_names(names: Sequence[str], shown: int = 10) -> str:
    """One sentence naming what a folder holds, so a student sees why nothing was taken."""
    if not names:
        return "The folder is empty."
    ordered = sorted(names)
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    return f"Found: {', '.join(ordered[:shown])}{more}."
