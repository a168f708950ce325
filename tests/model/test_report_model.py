"""The result model round-trips: from_dict(to_dict(r)) == r, with the message composed from its fields exactly
as diagnose.attach used to glue it (tests/model/test_statuses.py does the same over every report of the corpus)."""

from __future__ import annotations

import json

from hypothesis import assume, given, strategies as st

from grader.grading import diagnose, pipeline as grading
from grader.model.report import SAID_THEN, CheckResult, Status, compose, from_dict, to_dict, to_json

# Printable text: control characters are replaced on the way out (sanitize.py), so they cannot come back.
TEXT = st.text(st.characters(whitelist_categories=("L", "N", "P", "S", "Zs")), max_size=40)
EXPLANATION = TEXT.map(str.strip).filter(bool)  # as diagnose writes them: never blank, never padded


def report_with(*checks: CheckResult, devices: tuple[str, ...] = ("cpu",)):
    base = grading.failure_report("ex03", "nowhere.py", "x")
    return from_dict({**json.loads(to_json(base)), "devices": list(devices), "status": "ok", "error": None,
                      "checks": [to_dict(base.with_checks((c,)))["checks"][0] for c in checks]})


@given(symptom=TEXT, explanation=st.none() | EXPLANATION, cause_first=st.booleans(), several=st.booleans(),
       status=st.sampled_from([Status.FAILED, Status.ERROR, Status.PASSED]))
def test_a_check_reads_back_as_written(symptom, explanation, cause_first, several, status):
    assume(SAID_THEN.strip() not in symptom + (explanation or ""))  # else two compositions give one text
    failed_on = "cuda" if several and status is not Status.PASSED else None
    check = CheckResult("train", status, 0.0, 3.0, symptom, diagnosis="grad-not-zeroed" if explanation else None,
                        device=failed_on or "cpu", explanation=explanation, cause_first=cause_first,
                        failed_on=failed_on)
    report = report_with(check, devices=("cpu", "cuda") if several else ("cpu",))
    assert report.checks == (check,)
    assert from_dict(to_dict(report)) == report


def test_the_message_is_the_text_attach_used_to_glue():
    symptom, explanation = "first divergence at epoch 2.", "Your gradients accumulate."
    plain = CheckResult("train", Status.FAILED, 0, 3, symptom)
    after = diagnose.attach(plain, diagnose.Diagnosis("grad-not-zeroed", explanation))
    assert after.message == f"{symptom} {explanation}" and after.symptom == symptom
    first = diagnose.attach(plain, diagnose.Diagnosis("rebound-parameter", explanation, cause_first=True))
    assert first.message == f"{explanation} What Python then said: {symptom}"
    silent = CheckResult("train", Status.ERROR, 0, 3, "")
    assert diagnose.attach(silent, diagnose.Diagnosis("not-implemented", explanation, True)).message == explanation
    assert compose(symptom, explanation, failed_on="cuda") == f"[on cuda] {symptom} {explanation}"


def test_the_json_keeps_its_keys_in_order_and_adds_only_symptom_and_explanation():
    check = CheckResult("train", Status.FAILED, 0, 3, "epoch 2 differs.", diagnosis="grad-not-zeroed",
                        explanation="Your gradients accumulate.")
    written = to_dict(report_with(check))["checks"][0]
    assert list(written) == ["name", "status", "score", "max_score", "message", "symptom", "diagnosis", "visibility",
                             "device", "hint", "trajectory", "first_divergent_epoch", "explanation"]
    assert written["symptom"] == "epoch 2 differs."  # schema 1.2: the finding alone, never cut from the message
    assert written["message"] == "epoch 2 differs. Your gradients accumulate."


def test_the_graders_fault_is_read_in_one_place():
    """grader_failed: the status (run_status's `grader-failure`) decides; a sandbox tier "failed" still counts,
    for a report, read back or as JSON, that names it; the public tier stays as it was."""
    from dataclasses import replace

    from grader.model.report import RunStatus, grader_failed
    from grader.sandbox.tiers import Tier

    failed = grading.failure_report("ex03", "nowhere.py", "the worker died")
    assert failed.status is RunStatus.GRADER_FAILURE and failed.sandbox["tier"] == Tier.FAILED == "failed"
    assert grader_failed(failed) and grader_failed(to_dict(failed)) and grader_failed(from_dict(to_dict(failed)))
    # the child died before its hello: the worker's own tier, the grader's fault all the same
    died = replace(failed, sandbox={"tier": "namespaces"})
    assert grader_failed(died) and grader_failed(to_dict(died))
    ran = replace(failed, status=RunStatus.TIMEOUT, sandbox={"tier": "namespaces"})
    assert not grader_failed(ran) and not grader_failed(to_dict(ran))
    assert grader_failed({"status": "ok", "sandbox": {"tier": "failed"}})
    assert not grader_failed({"status": "ok", "sandbox": "failed"}) and not grader_failed({})
