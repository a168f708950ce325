"""The zygote's commands and events, typed on both sides (sandbox/control.py), and the event read in the trusted
process: a worker's answer that is not what it should be (it may come from another machine) is refused or read
as absent, never a crash."""

from __future__ import annotations

import base64
import json

import pytest

from grader.model.job import Limits
from grader.sandbox.control import (
    COMMANDS,
    EVENTS,
    ChildSetup,
    Config,
    Finished,
    JobControl,
    Ready,
    Refused,
    Stop,
    WireError,
    parse_command,
    parse_event,
)
from grader.sandbox.protocol import SandboxFailure, decode_event

FINISHED = Finished(job_id="1-1", exit_code=0, signal=None, timed_out=False, memory_exceeded=False, stopped=False,
                    peak_rss_mib=41.5, duration_s=0.25)


@pytest.mark.parametrize("message", [Config("torch", True, "userns", False), JobControl("3-4", Limits(9.0, 256)),
                                     Stop()])
def test_each_command_reads_back_as_written(message):
    assert parse_command(json.loads(json.dumps(message.to_wire()))) == message
    assert set(COMMANDS) == {"config", "job", "stop"}


@pytest.mark.parametrize("event", [FINISHED, Refused("2-2"),
                                   Ready(torch="2.13.0", cuda=False, sandbox={"tier": "namespaces"}, pid=12)])
def test_each_event_reads_back_as_written(event):
    assert parse_event(json.loads(json.dumps(event.to_wire()))) == event
    assert set(EVENTS) == {"ready", "finished", "refused"}


def test_a_child_setup_reads_back_and_refuses_nonsense():
    setup = ChildSetup(Limits(5.0, 128), {"memory": "/sys/fs/cgroup/memory/x"}, joined=True)
    assert ChildSetup.from_wire(json.loads(json.dumps(setup.to_wire()))) == setup
    for broken in (None, {"limits": None}, {"limits": {"timeout": 1}, "cgroups": ["memory"]}):
        with pytest.raises(ValueError):
            ChildSetup.from_wire(broken)


@pytest.mark.parametrize("raw", [None, [], {}, {"command": "rm -rf"}, {"command": 3}, {"stop": True}])
def test_what_is_no_command_is_refused(raw):
    with pytest.raises(WireError):
        parse_command(raw)


def answer(**changes):
    """A worker's answer as run_raw returns it (and a grading machine ships it back), with `changes`."""
    empty = base64.b64encode(b"").decode()
    return {**FINISHED.to_wire(), "channel": empty, "overflow": False, "visible_output": empty, "visible_size": 0,
            "hidden_output": "", **changes}


@pytest.mark.parametrize("field, value", [("duration_s", "soon"), ("duration_s", [1]), ("peak_rss_mib", {"a": 1}),
                                          ("peak_rss_mib", float("inf")), ("exit_code", "0"), ("signal", 9.5),
                                          ("exit_code", True)])
def test_a_worker_account_with_fields_of_the_wrong_type_reads_them_as_absent(field, value):
    outcome = decode_event(answer(**{field: value}))  # before: a ValueError or TypeError, or the value kept
    assert getattr(outcome, field) in (None, 0.0)
    assert outcome.messages == () and outcome.channel_error is None


@pytest.mark.parametrize("event", [None, "finished", {"event": "refused", "job_id": "1"}, {"exit_code": 0},
                                   {"event": "ready"}])
def test_an_answer_that_is_no_finished_event_is_the_workers_failure(event):
    with pytest.raises(SandboxFailure):
        decode_event(event)
