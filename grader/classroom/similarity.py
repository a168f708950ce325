"""Pairs of submissions that are suspiciously alike, per exercise, with the exercise's stub left out.

The fingerprinting is copydetect's (the optional `similarity` extra): each submission's code is tokenised
by Pygments with names, strings and comments abstracted away (so renaming variables or reformatting
changes nothing), hashed as k-grams and winnowed, as MOSS does; the k-grams of the exercise's stub are
removed first (boilerplate), so the docstrings and signatures every student starts from count for
nothing. Two submissions are flagged when a share of at least `threshold` of the tokens of either one
is also found in the other, and at least `min_tokens` tokens overlap (tiny files prove nothing).

This runs in the trusted parent on source text only: nothing is executed. A flagged pair is evidence
for a person to look at (the class page shows the two side by side), never a verdict.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from grader.course import exercises
from grader.course.submission import read

THRESHOLD = 0.9  # share of either file's tokens found in the other (tests/classroom/test_similarity.py)
MIN_TOKENS = 60  # overlapping tokens below which nothing is claimed
NOISE_K = 25  # copydetect's defaults: k-gram length (noise threshold) ...
GUARANTEE = 30  # ... and the length of a match it is guaranteed to find
RESULT_FILE = "similarity.json"


class SimilarityUnavailable(RuntimeError):
    """copydetect is not installed: a one-line usage error for the CLI."""


@dataclass(frozen=True)
class Pair:
    exercise: str
    first: str
    second: str
    similarity: float  # the larger of the two shares
    shares: tuple[float, float]
    overlap_tokens: int
    first_spans: list[tuple[int, int]]  # character ranges of the shared code in each file
    second_spans: list[tuple[int, int]]


def _copydetect() -> Any:
    try:
        import copydetect
    except ModuleNotFoundError:
        raise SimilarityUnavailable("similarity needs copydetect: pip install 'dl-grader[similarity]'") from None
    return copydetect


def code_of(path: Path, exercise_id: str) -> str | None:
    """The code a submission holds (a notebook's code cells joined), or None when it cannot be read."""
    try:
        loaded = read(Path(path), exercise_id)
    except OSError:
        return None
    if not loaded.cells:
        return None
    return "\n".join(cell.source for cell in loaded.cells)


def compare(exercise_id: str, codes: dict[str, str], threshold: float = THRESHOLD,
            min_tokens: int = MIN_TOKENS) -> list[Pair]:
    """The flagged pairs among `codes` (student -> code) for one exercise, most alike first."""
    copydetect = _copydetect()
    stub = exercises.load(exercise_id).stub
    boilerplate = copydetect.CodeFingerprint("stub.py", NOISE_K, 1, fp=io.StringIO(stub)).hashes
    window = GUARANTEE - NOISE_K + 1
    prints = {}
    for student, code in sorted(codes.items()):
        try:
            prints[student] = copydetect.CodeFingerprint(f"{student}.py", NOISE_K, window,
                                                         boilerplate=list(boilerplate), fp=io.StringIO(code))
        except Exception:  # noqa: BLE001, S112 - a file the tokenizer cannot take is simply not compared
            continue
    pairs = []
    for first, second in combinations(sorted(prints), 2):
        overlap, shares, slices = copydetect.compare_files(prints[first], prints[second])
        shares = (float(shares[0]), float(shares[1]))
        if int(overlap) < min_tokens or max(shares) < threshold:
            continue
        pairs.append(Pair(exercise_id, first, second, round(max(shares), 4), (round(shares[0], 4),
                          round(shares[1], 4)), int(overlap), _spans(slices[0]), _spans(slices[1])))
    return sorted(pairs, key=lambda p: (-p.similarity, p.first, p.second))


def _spans(slices: Any) -> list[tuple[int, int]]:
    if len(slices) == 0 or len(slices[0]) == 0:
        return []
    return [(int(start), int(end)) for start, end in zip(slices[0], slices[1], strict=True)]


def analyse(out: Path, threshold: float = THRESHOLD, min_tokens: int = MIN_TOKENS) -> dict[str, Any]:
    """Compare, per exercise, every graded submission under OUT (the files its reports name);
    writes OUT/similarity.json and returns it. Each pair carries both codes for the side-by-side view."""
    out = Path(out)
    by_exercise: dict[str, dict[str, str]] = {}
    missing = []
    for report_path in sorted(out.glob("*/ex*.json")):
        exercise_id = report_path.name.split(".")[0]
        if report_path.name != f"{exercise_id}.json" or not exercises.EXERCISE_ID.fullmatch(exercise_id):
            continue
        try:
            data = json.loads(report_path.read_text("utf-8"))
            path = Path(data["submission"]["path"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        code = code_of(path, exercise_id) if path.is_file() and not path.is_symlink() else None
        if code is None:
            missing.append(str(report_path.relative_to(out)))
            continue
        by_exercise.setdefault(exercise_id, {})[report_path.parent.name] = code
    result: dict[str, Any] = {"threshold": threshold, "min_tokens": min_tokens, "not_compared": missing,
                              "exercises": {}}
    for exercise_id, codes in sorted(by_exercise.items()):
        pairs = compare(exercise_id, codes, threshold, min_tokens)
        result["exercises"][exercise_id] = {
            "compared": len(codes),
            "pairs": [{**asdict(p), "first_code": codes[p.first], "second_code": codes[p.second]} for p in pairs],
        }
    from grader.classroom.batch import (
        write_atomic,  # here: batch imports this module's callers, not the reverse
    )

    write_atomic(out / RESULT_FILE, json.dumps(result, indent=2))
    return result


def render(result: dict[str, Any]) -> str:
    """The text the instructor reads."""
    lines = []
    for exercise_id, entry in result["exercises"].items():
        pairs = entry["pairs"]
        lines.append(f"{exercise_id}: {entry['compared']} submissions compared, {len(pairs)} pair(s) alike "
                     f"(>= {result['threshold']:.0%} of either file's tokens shared, the stub left out)")
        lines += [f"  {p['similarity']:.0%}  {p['first']}  {p['second']}  ({p['overlap_tokens']} tokens)"
                  for p in pairs]
    if result["not_compared"]:
        lines.append(f"Not compared (the file a report names is gone or unreadable): {len(result['not_compared'])}")
    return "\n".join(lines or ["No graded submissions to compare."]) + "\n"
