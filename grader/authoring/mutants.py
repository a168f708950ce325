"""Mutation analysis: grade one-mistake mutants of an exercise's reference solution and count what is caught.

Each mutant (grader/authoring/operators.py) is written to a file and graded as a submission is in a batch:
jobs of the local warm pool (`executor.LocalExecutor`, the executor `grade batch` uses), sandboxed, compared in
this process by `grading.grade`. A mutant at full marks may be equivalent (the mistake changes nothing the
checks can see): its probe results are then compared, every one, with the solution's, within the bound a
fresh recording of the references is held to (`record.drift`). A mutant that loses points is not equivalent,
since the same probe results would earn the solution's marks.

`caught` counts the non-equivalent mutants that lose points (`total` is how many are not equivalent),
`named` those whose report gives the code of the mistake applied, `nameable` those whose mistake has a code
in the registry (grader/codes.py) at run time, `false_codes` the codes given that name another mistake.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grader.authoring.operators import OPERATORS, Context, Mutant, Operator, mutants
from grader.course import exercises
from grader.grading import pipeline as grading
from grader.model.codes import CODES
from grader.model.report import Report


class AnalysisError(RuntimeError):
    """The analysis cannot run (no solution, the solution does not get full marks): one line."""


@dataclass(frozen=True)
class Graded:
    """One mutant's outcome (the JSON's entry for it)."""

    operator: str
    description: str
    line: int
    equivalent: bool
    score: float
    max_score: float
    caught: bool
    expected_code: str | None  # the code of the mistake applied, when the registry has it
    codes: tuple[str, ...]  # the diagnosis codes the report gave
    intended_code: str = ""  # the code that would name it, registered or not (the human table's note)

    @property
    def named(self) -> bool:
        return self.expected_code is not None and self.expected_code in self.codes

    @property
    def false_codes(self) -> tuple[str, ...]:
        return tuple(c for c in self.codes if c != self.expected_code)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["intended_code"]
        data["codes"] = list(self.codes)
        return data


@dataclass(frozen=True)
class Analysis:
    exercise: str
    mutants: tuple[Graded, ...]

    @property
    def live(self) -> tuple[Graded, ...]:
        return tuple(m for m in self.mutants if not m.equivalent)

    @property
    def caught(self) -> int:
        return sum(m.caught for m in self.live)

    @property
    def total(self) -> int:
        return len(self.live)

    @property
    def named(self) -> int:
        return sum(m.named for m in self.live)

    @property
    def nameable(self) -> int:
        return sum(m.expected_code is not None for m in self.live)

    @property
    def false_codes(self) -> int:
        return sum(len(m.false_codes) for m in self.mutants)

    @property
    def sound(self) -> bool:
        """Every non-equivalent mutant caught and no false code."""
        return self.caught == self.total and self.false_codes == 0

    def as_dict(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "mutants": [m.as_dict() for m in self.mutants], "caught": self.caught,
                "total": self.total, "named": self.named, "nameable": self.nameable, "false_codes": self.false_codes}


def registered(code: str) -> str | None:
    """The code when the registry holds it now, else None: a mistake without a code is not nameable."""
    return code if code in {str(c) for c in CODES} else None


def solution_path(exercise_id: str) -> Path:
    root = exercises.solutions_root()
    path = root / f"{exercise_id}.py" if root else None
    if path is None or not path.is_file():
        raise AnalysisError(f"{exercise_id}: no solutions/{exercise_id}.py (mutation analysis needs the reference "
                            "solution: a full checkout)")
    return path


def context(exercise: exercises.Exercise) -> Context:
    """The notebook's data per function: the list arguments of the first visible check that probes it."""
    data: dict[str, dict[str, Any]] = {}
    for check in exercise.checks:
        if check.visibility == "visible" and check.probe not in data:
            data[check.probe] = {k: v for k, v in check.args.items() if isinstance(v, list)}
    return Context(exercise.framework, data)


def catalogue(exercise_id: str, operators: tuple[Operator, ...] = OPERATORS) -> list[Mutant]:
    exercise = exercises.load(exercise_id)
    return mutants(solution_path(exercise_id).read_text("utf-8"), context(exercise), operators)


def analyse(exercise_id: str, *, jobs: int = 2, limits: grading.Limits | None = None,
            operators: tuple[Operator, ...] = OPERATORS,
            progress: Callable[[int, int], None] | None = None) -> Analysis:
    """Grade every mutant of the exercise's solution on the warm pool; see the module's docstring."""
    from grader.execution.executor import Job, LocalExecutor

    found = catalogue(exercise_id, operators)
    limits = limits or grading.Limits()
    with tempfile.TemporaryDirectory(prefix="grade-mutants-") as tmp:
        paths = []
        for index, mutant in enumerate(found):
            path = Path(tmp) / f"m{index:03d}" / f"{exercise_id}.py"
            path.parent.mkdir()
            path.write_text(mutant.source, "utf-8")
            paths.append(path)
        solution = solution_path(exercise_id)
        with LocalExecutor(jobs, device="cpu", prewarm=exercise_id) as pool:
            futures = [pool.submit(Job(exercise_id, p, "cpu", limits)) for p in [solution, *paths]]
            reports = []
            for done, future in enumerate(futures):
                reports.append(_report(future.result(), exercise_id))
                if progress:
                    progress(done + 1, len(futures))
        if not reports[0].full_marks:
            raise AnalysisError(f"{exercise_id}: the reference solution does not get full marks "
                                f"({reports[0].score:g}/{reports[0].max_score:g}): run `grade check-exercise "
                                f"{exercise_id}`")
        unchanged = _unchanged(exercise_id, solution, [p for p, r in zip(paths, reports[1:], strict=True)
                                                        if r.full_marks])
        graded = [_graded(m, r, str(p) in unchanged) for m, r, p in zip(found, reports[1:], paths, strict=True)]
    return Analysis(exercise_id, tuple(graded))


def _report(outcome: Any, exercise_id: str) -> Report:
    if outcome.report is None:
        raise AnalysisError(f"{exercise_id}: a mutant could not be graded: {outcome.problem}")
    return outcome.report


def _graded(mutant: Mutant, report: Report, equivalent: bool) -> Graded:
    codes = tuple(dict.fromkeys(c.diagnosis for c in report.checks if c.diagnosis))
    return Graded(mutant.operator, mutant.description, mutant.line, equivalent, report.score, report.max_score,
                  report.score < report.max_score and not equivalent, registered(mutant.code), codes, mutant.code)


def _unchanged(exercise_id: str, solution: Path, candidates: list[Path]) -> set[str]:
    """The candidates whose every probe result (process evidence included) equals the solution's."""
    if not candidates:
        return set()
    from grader.course.submission import read
    from grader.grading.record import drift

    exercise = exercises.load(exercise_id)
    limits = grading.Limits(timeout=300)

    def fields(worker: Any, path: Path) -> dict[str, Any] | None:
        outcome, problem, _ = grading.run_probes(worker, exercise, read(path, exercise_id), exercise.checks,
                                                 ["cpu"], limits)
        if problem or outcome is None:
            return None
        return {r.key: r.fields if r.ok else {"error": str(r.error)} for r in outcome.results}

    with grading.start_worker(exercise_id, "cpu") as worker:
        reference = fields(worker, solution)
        same = set()
        for path in candidates:
            probed = fields(worker, path)
            if reference is not None and probed is not None and not drift(reference, probed):
                same.add(str(path))
    return same


def render(analysis: Analysis) -> str:
    """The human table: one row per mutant, then the totals."""
    rows = [("line", "operator", "score", "outcome", "codes")]
    for m in analysis.mutants:
        if m.equivalent:
            outcome = "equivalent"
        elif not m.caught:
            outcome = "NOT CAUGHT"
        elif m.named:
            outcome = "caught, named"
        elif m.expected_code is None:
            outcome = f"caught (no code yet: {m.intended_code})"
        else:
            outcome = f"caught, NOT NAMED ({m.intended_code})"
        false = [c for c in m.false_codes]
        codes = ", ".join(m.codes) + (f"  FALSE: {', '.join(false)}" if false else "")
        rows.append((str(m.line), m.operator, f"{m.score:g}/{m.max_score:g}", outcome, codes or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]
    a = analysis
    equivalent = len(a.mutants) - a.total
    lines.append("")
    lines.append(f"{a.exercise}: caught {a.caught}/{a.total} (of {len(a.mutants)} mutants, {equivalent} equivalent); "
                 f"named {a.named}/{a.nameable} nameable; false codes {a.false_codes}")
    return "\n".join(line.rstrip() for line in lines) + "\n"
