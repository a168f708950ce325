"""The sandbox's typed core without a worker: the Tier enum, the Plan a zygote decides, and what it reports."""

from __future__ import annotations

import json
import sys

import pytest

from grader.sandbox import namespaces, plan, tiers
from grader.sandbox.tiers import Tier

HISTORIC_KEYS = ["requested", "root", "worker_pid", "bubblewrap", "notes", "cgroups"]


def test_tiers_serialise_as_the_strings_reports_have_always_carried():
    assert json.dumps({"tier": Tier.NAMESPACES}) == '{"tier": "namespaces"}'
    assert [str(t) for t in tiers.names()] == ["none", "process", "namespaces"]
    assert {Tier.NOT_RUN, Tier.FAILED, Tier.UNKNOWN, Tier.UNAVAILABLE} == {"not-run", "failed", "unknown",
                                                                         "unavailable"}


def test_tier_order():
    assert tiers.at_least("namespaces", "namespaces") and tiers.at_least("namespaces", "process")
    assert not tiers.at_least("process", "namespaces") and not tiers.at_least("unknown", "none")
    assert tiers.rank("unavailable") < tiers.rank("none") < tiers.rank("process") < tiers.rank("namespaces")


def test_the_plan_reports_its_keys_in_the_historic_order():
    probed = plan.Plan(requested="auto", tier=Tier.NAMESPACES, userns=True).as_dict()
    assert list(probed) == [*HISTORIC_KEYS, "userns", "pid_ns_fd", "tier", "drop_uid"]
    asked = plan.Plan(requested="process", root=True, drop_uid=True, student_uid=7).as_dict()
    assert list(asked) == [*HISTORIC_KEYS, "tier", "userns", "pid_ns_fd", "drop_uid", "student_uid"]
    elsewhere = plan.Plan(linux=False, tier=Tier.NONE, notes=("why",)).as_dict()
    assert list(elsewhere) == [*HISTORIC_KEYS[:-1], "tier"] and elsewhere["notes"] == ["why"]


def test_only_a_namespaces_plan_without_its_own_pid_namespace_has_an_intermediate():
    assert namespaces.job_has_intermediate(plan.Plan(tier=Tier.NAMESPACES))
    assert not namespaces.job_has_intermediate(plan.Plan(tier=Tier.NAMESPACES, pid_ns_fd=3))
    assert not namespaces.job_has_intermediate(plan.Plan(tier=Tier.PROCESS))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")
def test_asking_for_no_sandbox_tries_nothing_and_says_so():
    found = plan.prepare("none", cgroups=False)
    assert found.tier == Tier.NONE and found.cgroups == {} and not found.userns and found.pid_ns_fd is None
    assert json.loads(json.dumps(found.as_dict()))["tier"] == "none"
