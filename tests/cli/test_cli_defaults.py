"""The command line's defaults and choices are the library's own (written once, in the library): each option
here either reads them or, where the library module is too heavy for `grade`'s start-up, is held to them."""

from __future__ import annotations

import click
import pytest

from grader.classroom import batch, classpage, layouts, similarity
from grader.cli.main import library_default, main
from grader.grading import pipeline as grading
from grader.lms import autograder as lms, packages as packaging
from grader.sandbox import doctor
from grader.sandbox.client import SANDBOX_CHOICES


def option(command: str, name: str) -> click.Option:
    found = main
    for word in command.split():
        found = found.commands[word]
    return next(p for p in found.params if isinstance(p, click.Option) and name in p.opts)


@pytest.mark.parametrize("command", ["check", "batch"])
def test_the_sandbox_limits_and_the_device_default_to_the_librarys(command):
    assert option(command, "--timeout").default == grading.Limits().timeout
    assert option(command, "--memory").default == grading.Limits().memory_mib
    assert option(command, "--device").default == library_default(grading.grade, "device") == batch.Options().device
    assert tuple(option(command, "--device").type.choices) == tuple(grading.DEVICES)


def test_the_lms_entry_points_default_to_the_lms_paths():
    assert option("gradescope", "--submission").default == lms.GRADESCOPE_SUBMISSION
    assert option("gradescope", "--results").default == lms.GRADESCOPE_RESULTS
    assert option("prairielearn", "--submission").default == lms.PRAIRIELEARN_SUBMISSION
    assert option("prairielearn", "--results").default == lms.PRAIRIELEARN_RESULTS
    assert option("gradescope-package", "--out").default == packaging.GRADESCOPE_ZIP
    for command in ("gradescope", "prairielearn", "gradescope-package", "prairielearn-package"):
        assert option(command, "--timeout").default == grading.DEFAULT_TIMEOUT_S


def test_the_doctor_offers_the_workers_sandbox_choices():
    assert tuple(option("doctor", "--sandbox").type.choices) == SANDBOX_CHOICES
    assert option("doctor", "--sandbox").default == library_default(doctor.examine, "sandbox")


def test_batch_options_default_as_the_batch_library_does():
    assert tuple(option("batch", "--layout").type.choices) == layouts.LAYOUTS
    assert option("batch", "--layout").default == batch.Options().layout
    assert tuple(option("batch", "--feedback-hidden").type.choices) == classpage.HIDDEN_CHOICES
    assert option("batch", "--feedback-hidden").default == library_default(classpage.write_student_pages, "hidden")
    assert option("batch", "--jobs").default is None  # None: batch.Options' own, one worker per core
    assert batch.Options().jobs == batch.default_jobs()
    assert f"[default: {similarity.THRESHOLD:g}]" in option("similarity", "--threshold").help


def test_the_service_options_name_the_services_defaults():
    db = pytest.importorskip("grader.service.db")
    store = pytest.importorskip("grader.service.store")
    assert db.DEFAULT_DB_FILE in option("serve", "--db").help
    assert set(option("token add", "--role").type.choices) == set(store.ROLES)
