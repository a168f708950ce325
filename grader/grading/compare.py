"""The compare step: each selected check judged on each device (checks.evaluate, fenced), then combined.

What grade() and report_without_run both turn a run's outcome (or its absence) into: one CheckResult per check.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from grader.course import exercises
from grader.course.source import Code
from grader.grading import checks, diagnose
from grader.model.report import CheckResult, Status
from grader.sandbox.protocol import Outcome, Result


def results(exercise: exercises.Exercise, selected: tuple[Any, ...], devices: list[str],
             outcome: Outcome | None, problem: str | None, source: Code | None = None,
             counterfactual: dict[tuple[str, str], checks.Counterfactual] | None = None) -> tuple[CheckResult, ...]:
    references = exercise.references()
    received: dict[tuple[str, str], Result] = {}
    for result in outcome.results if outcome else ():
        received.setdefault((result.key, result.device), result)
    timed_out = bool(outcome and outcome.timed_out)
    peers = {device: tuple(diagnose.Peer(c, result_fields(received.get((c.key, device)), references.get(c.key)),
                                         (references.get(c.key) or {}).get("fields")) for c in selected)
             for device in devices}
    found = []
    for check in selected:
        per_device = [
            evaluate(exercise, check, received.get((check.key, device)), references.get(check.key), device,
                      problem, timed_out, peers[device], source, (counterfactual or {}).get((check.key, device)))
            for device in devices
        ]
        found.append(combine(per_device, devices))
    return tuple(found)


def evaluate(exercise: exercises.Exercise, check: Any, observed: Result | None,
              reference: dict[str, Any] | None, device: str, problem: str | None, timed_out: bool,
              peers: tuple[Any, ...], source: Code | None = None,
              counterfactual: checks.Counterfactual | None = None) -> CheckResult:
    """checks.evaluate, fenced: the numbers are the submission's, so whatever they make the comparison or a
    diagnosis do (an overflow, a recursion, an error nobody foresaw) fails this check alone, never the run."""
    try:
        return checks.evaluate(exercise, check, observed, reference, device, problem, timed_out, peers, source,
                               counterfactual)
    except Exception:  # noqa: BLE001 - see above
        return CheckResult(name=check.name, status=Status.FAILED, score=0.0, max_score=check.points,
                           symptom=checks.MALFORMED_RESULT, visibility=check.visibility, device=device)


def result_fields(result: Result | None, reference: dict[str, Any] | None) -> dict[str, Any] | None:
    """A result's fields when its probe ran without an error and its arrays have the reference's shapes:
    evidence for the other checks' diagnoses."""
    fields = result.fields if result and result.ok else None
    if not isinstance(fields, dict) or not checks.shapes_fit(fields, (reference or {}).get("fields") or {}):
        return None
    return fields


def combine(per_device: list[CheckResult], devices: list[str]) -> CheckResult:
    """One result per check: passed only if it passed on every device; else the first failure."""
    failing = [r for r in per_device if r.status is not Status.PASSED]
    if not failing:
        return replace(per_device[0], device=",".join(devices))
    first = failing[0]
    if len(devices) > 1:
        return replace(first, failed_on=first.device)
    return first

