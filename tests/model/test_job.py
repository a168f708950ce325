"""The job the parent sends a child, typed on both sides: what run_probes builds is what the child reads back."""

from __future__ import annotations

import json

import pytest

from grader.model.job import Cell, HiddenPart, Invocation, Job, Limits, Perturbed

JOB = Job(exercise="ex03", module_name="ex03", probe_source="def train(ctx, lr):\n    return {}\n",
          cells=(Cell("ex03.py", "w = 1\n"),), invocations=(Invocation("train", "train", {"lr": 0.1}, 15.0),
                                                           Invocation("loss", "loss", {"y": [1.0]})),
          devices=("cpu",), limits=Limits(12.5, 512), call_budget_s=6.25,
          hidden_invocations=(Invocation("hidden", "train", {"lr": 0.2}),),
          counterfactual=Perturbed(0.45, 0.65, (Invocation("train", "train", {"lr": 0.1, "n_iters": 3}),)),
          hidden_counterfactual=(Invocation("hidden", "train", {"lr": 0.2, "n_iters": 3}),))


def test_a_job_reads_back_as_written_across_machines():
    assert Job.from_wire(json.loads(json.dumps(JOB.to_wire()))) == JOB


def test_the_child_gets_the_visible_part_first_and_the_hidden_part_later():
    first = json.loads(json.dumps(JOB.for_child("7-1").to_wire()))
    assert "hidden_invocations" not in first and "hidden_counterfactual" not in first
    assert (first["job_id"], first["hidden_follows"]) == ("7-1", True)
    child = Job.from_wire(first)
    assert child.hidden_follows and child.hidden_invocations == () and child.counterfactual == JOB.counterfactual
    later = HiddenPart.from_wire(json.loads(json.dumps(JOB.hidden_part().to_wire())))
    assert later == HiddenPart(JOB.hidden_invocations, JOB.hidden_counterfactual)
    plain = Job(**{**JOB.__dict__, "hidden_invocations": (), "hidden_counterfactual": ()})
    assert plain.hidden_part() is None and not Job.from_wire(plain.for_child("x").to_wire()).hidden_follows


@pytest.mark.parametrize("broken", [
    None, [], {}, {**JOB.to_wire(), "cells": "all of them"}, {**JOB.to_wire(), "invocations": [{"key": 3}]},
    {**JOB.to_wire(), "limits": {"timeout": "long"}}, {**JOB.to_wire(), "limits": {"timeout": float("nan")}},
    {**JOB.to_wire(), "counterfactual": {"gradient": True, "rate": 0.6}},
    {**JOB.to_wire(), "devices": ["cpu", 0]}, {**JOB.to_wire(), "probe_source": None},
])
def test_a_job_that_is_not_one_is_refused(broken):
    with pytest.raises(ValueError):
        Job.from_wire(broken)


def test_a_budget_that_is_no_positive_number_is_no_budget():
    for budget in (0, -1, "5", True, None):
        assert Job.from_wire({**JOB.to_wire(), "call_budget_s": budget}).call_budget_s is None
