"""`grade doctor` covers the whole set-up: besides the sandbox tier, python, numpy, torch and its CUDA
devices, the optional pieces, and what each missing one costs."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest
from click.testing import CliRunner

from grader.cli.main import main
from grader.sandbox import doctor


def test_environment_reports_the_real_versions_and_the_cost_of_what_is_missing():
    found = doctor.environment()
    assert found["numpy"] == metadata.version("numpy")
    assert found["matplotlib"] == metadata.version("matplotlib")
    version, torch_sees = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__, torch.cuda.device_count())"],
        capture_output=True, text=True, check=True).stdout.split()
    assert found["torch"] == version
    assert len(found["cuda_devices"]) == int(torch_sees)
    assert ("cuda" in found["missing"]) == (torch_sees == "0")
    assert "torch" not in found["missing"] and "numpy" not in found["missing"]
    text = "\n".join(doctor.render_environment(found))
    assert f"numpy {found['numpy']}" in text and f"torch {found['torch']}" in text
    if "cuda" in found["missing"]:
        assert "without cuda: --device cuda is refused" in text


def test_a_missing_piece_says_what_it_costs(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda name: None if name == "matplotlib" else real(name))
    found = doctor.environment()
    assert found["matplotlib"] is None and "--plot" in found["missing"]["matplotlib"]
    assert "matplotlib MISSING" in "\n".join(doctor.render_environment(found))


@pytest.mark.slow
def test_grade_doctor_prints_the_environment_with_the_tier():
    outcome = CliRunner().invoke(main, ["doctor", "--json"])
    assert outcome.exit_code == 0, outcome.output
    found = json.loads(outcome.output)
    assert found["plan"]["tier"] and found["environment"]["torch"]
    text = CliRunner().invoke(main, ["doctor"]).output
    assert text.startswith("Sandbox tier:") and "Environment:" in text and "CUDA devices:" in text
