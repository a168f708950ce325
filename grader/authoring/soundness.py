"""`grade check-exercise EX`: is a new or changed exercise sound? Each step a verdict and its problems.

In order: the spec (its schema and meaning, grader/authoring/spec.py), the hints (they parse, their tags are
registered codes), the references (recorded for every check, and current: a fresh recording of the solution
agrees within `record.REFERENCE_ULPS`), the solution (full marks), the stub (not attempted: every check
`not-implemented`) and the mutation analysis (every mutant that changes a result caught, no false code). A step
that the ones before it make meaningless (no references to grade against) is skipped and says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from grader.authoring import mutants, spec
from grader.course import exercises, hints
from grader.grading import pipeline as grading
from grader.model.codes import CODES

NAMED_GOAL = 0.9  # the share of nameable mutants that should be named; below it, a note (not unsound)


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    summary: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def check(exercise_id: str, jobs: int = 2) -> Iterator[Step]:
    """The steps, one at a time (the CLI prints each as it comes)."""
    spec_problems = spec.problems(exercise_id)
    loads = exercises.problem(exercise_id)
    if loads and not spec_problems:
        spec_problems = [loads]
    yield Step("spec", not spec_problems, "valid" if not spec_problems else "invalid", tuple(spec_problems))
    if loads:
        yield Step("the rest", False, "skipped: the spec does not load")
        return
    yield _hints(exercise_id)
    references = _references(exercise_id)
    yield references
    if not references.ok:
        yield Step("the rest", False, "skipped: record the references first (`grade record " f"{exercise_id}`)")
        return
    yield _stub(exercise_id)
    yield from _mutants(exercise_id, jobs)


def _hints(exercise_id: str) -> Step:
    path = exercises.course_root() / exercise_id / "hints.md"
    try:
        parsed = hints.parse(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return Step("hints", False, "unreadable", (f"hints.md: {exc}",))
    known = {c.value for c in CODES}
    problems = [f"hints.md: hint {h.number}: tag {code!r} is not a diagnosis code (docs/diagnoses.md)"
                for h in parsed for code in h.helps if code not in known]
    if not parsed:
        problems.append("hints.md: no hints (hints are separated by `---` lines)")
    return Step("hints", not problems, f"{len(parsed)} hints parse", tuple(problems))


def _references(exercise_id: str) -> Step:
    from grader.grading import record

    exercise = exercises.load(exercise_id)
    stored = exercise.references()
    unrecorded: dict[str, int] = {}
    for check in exercise.checks:
        if check.key not in stored:
            where = "hidden/references.json" if check.visibility == "hidden" else "references/visible.json"
            unrecorded[where] = unrecorded.get(where, 0) + 1
    if unrecorded:
        return Step("references", False, "not recorded", tuple(
            f"{where}: no reference for {count} check(s): run `grade record {exercise_id}`"
            for where, count in unrecorded.items()))
    try:
        fresh = record.reference_documents(exercise_id)
    except record.RecordingError as exc:
        return Step("references", False, "cannot be checked", (str(exc),))
    import json

    problems = []
    for relative, document in fresh.items():
        departures = record.drift(json.loads(exercise.path(relative).read_text("utf-8")), document, relative)
        if departures:
            problems.append(f"{relative}: not current ({departures[0]}; {len(departures)} departures): run "
                            f"`grade record {exercise_id}`")
    return Step("references", not problems, "recorded and current" if not problems else "stale", tuple(problems))


def _stub(exercise_id: str) -> Step:
    report = grading.grade(exercise_id, exercises.course_root() / exercise_id / "stub.py", device="cpu")
    wrong = [f"stub.py: check {c.name!r}: {c.status.value}, {c.diagnosis or 'no diagnosis'} (not `not-implemented`)"
             for c in report.checks if c.diagnosis != "not-implemented"]
    if report.checks and report.score == 0 and not wrong:
        return Step("stub", True, "not attempted: 0 points, every check `not-implemented`")
    return Step("stub", False, f"{report.score:g}/{report.max_score:g}: an untouched stub should be not attempted",
                tuple(wrong[:5]))


def _mutants(exercise_id: str, jobs: int) -> Iterator[Step]:
    try:
        a = mutants.analyse(exercise_id, jobs=jobs)
    except mutants.AnalysisError as exc:  # no solution, or it falls short
        yield Step("solution", False, "not at full marks, or missing", (str(exc),))
        return
    yield Step("solution", True, "full marks")
    summary = f"caught {a.caught}/{a.total}, named {a.named}/{a.nameable} nameable, {a.false_codes} false codes"
    problems = [f"solutions/{exercise_id}.py line {m.line}: {m.operator} mutant not caught ({m.description})"
                for m in a.live if not m.caught]
    problems += [f"solutions/{exercise_id}.py line {m.line}: {m.operator} mutant given {', '.join(m.false_codes)}"
                 for m in a.mutants if m.false_codes]
    notes = []
    if a.nameable and a.named < NAMED_GOAL * a.nameable:
        notes.append(f"named {a.named} of {a.nameable} nameable mutants, under {NAMED_GOAL:.0%}: "
                     "`grade mutants " f"{exercise_id}` lists them")
    yield Step("mutants", not problems, summary, tuple(problems), tuple(notes))


def render(exercise_id: str, step: Step) -> str:
    lines = [f"{exercise_id}: {step.name}: {'ok' if step.ok else 'PROBLEM'}: {step.summary}"]
    lines += [f"  {exercise_id}: {line}" for line in step.problems]
    lines += [f"  note: {line}" for line in step.notes]
    return "\n".join(lines)
