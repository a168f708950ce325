"""Sandbox tiers are a registry (tiers.register): a tier registered here, in the test alone, is tried by the plan,
entered by a job's child, described by the doctor and offered as a request, with no other file edited."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from grader.model.job import Limits
from grader.sandbox import doctor, isolation, plan as sandbox_plan, tiers
from grader.sandbox.control import ChildSetup
from grader.sandbox.tiers import DoctorLines, Entered, Tier, TierEntry

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")


def _attempt(plan, notes):
    notes.append("the toy tier was tried")
    return replace(plan, drop_uid=False)


def _isolate(plan, limits, workdir):
    os.chdir(workdir)
    return Entered(workdir, ("toy-wall",), {"TOY_TIMEOUT": str(limits["timeout"])})


def _doctor(plan, uid_note):
    return DoctorLines(network="a toy wall", filesystem="a toy floor", signalling="a toy door " + uid_note,
                       privileges="toy privileges", timeout=", and the toy box closes")


TOY = TierEntry(name="toy", strength=3, requests=("toy",), insisted_by=("toy",), needs="a toy box",
                attempt=_attempt, isolate=_isolate, doctor=_doctor, seccomp=False, cgroups=False)


@pytest.fixture
def toy():
    tiers.register(TOY)
    yield TOY
    tiers.unregister(TOY.name)


def test_a_registered_tier_takes_its_place_in_the_order_and_the_requests(toy):
    assert tiers.names() == ("none", "process", "namespaces", "toy")
    assert tiers.rank("toy") > tiers.rank(Tier.NAMESPACES) and tiers.at_least("toy", "namespaces")
    assert tiers.choices() == ("auto", "toy", "namespaces", "userns", "process", "none")
    assert tiers.insisted("toy") is toy and tiers.insisted("namespaces").name == "namespaces"
    assert not tiers.wants_cgroups("toy") and tiers.insisted("process") is None


def test_without_it_everything_is_as_shipped():
    assert tiers.names() == ("none", "process", "namespaces")
    assert tiers.choices() == ("auto", "namespaces", "userns", "process", "none")


@linux_only
def test_the_plan_tries_a_registered_tier_when_it_is_asked_for(toy):
    found = sandbox_plan.prepare("toy", cgroups=False)
    assert found.tier == "toy" and "the toy tier was tried" in found.notes and found.cgroups == {}
    assert json.loads(json.dumps(found.as_dict()))["tier"] == "toy"
    with pytest.raises(ValueError, match="no sandbox tier answers"):
        sandbox_plan.prepare("a request nobody answers", cgroups=False)


@linux_only
def test_a_jobs_child_enters_a_registered_tier(toy, tmp_path):
    """isolation.enter in a forked child, as the zygote's child calls it: the toy's isolate runs, its defences
    and environment are what the child reports and has."""
    plan = replace(sandbox_plan.prepare("toy", cgroups=False), seccomp=False)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            found = isolation.enter(plan, ChildSetup(Limits(7.0, 256), {}, joined=True), str(tmp_path))
            os.write(write, json.dumps({**found, "env": os.environ.get("TOY_TIMEOUT"), "cwd": os.getcwd()}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    seen = json.loads(data)
    assert seen["tier"] == "toy" and "toy-wall" in seen["defences"] and "seccomp" not in seen["defences"]
    assert seen["defences"][:5] == list(isolation.BASE_DEFENCES)
    assert (seen["env"], seen["cwd"]) == ("7.0", str(tmp_path))


def test_the_doctor_describes_a_registered_tier_from_its_entry(toy):
    plan = {"tier": "toy", "requested": "toy", "root": False, "cgroups": {}, "notes": [], "userns": True}
    inside = {"uid": 1000, "network": "blocked", "signal_grader": "EPERM", "cap_eff": "0", "seccomp": "off"}
    lines = {name: relies_on for name, relies_on, _ in doctor.defences(plan, inside, Path("."))}
    assert lines["no network"] == "a toy wall" and lines["private filesystem"] == "a toy floor"
    assert lines["no signalling the grader"].startswith("a toy door a user namespace")
    assert lines["privileges"] == "toy privileges" and lines["wall-clock timeout"].endswith("the toy box closes")
    assert lines["system calls"].startswith("NOT DEFENDED")  # the toy's entry has no seccomp filter
    text = doctor.render({"plan": plan, "defences": doctor.defences(plan, inside, Path(".")),
                          "inside": {"pid": 1, "uid": 1000, "visible_processes": 1, "env_names": "PATH"}})
    assert text.startswith("Sandbox tier: toy\n")  # no warning: the toy ranks above 'namespaces'
