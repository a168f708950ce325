"""`grade serve --scheduler` over HTTP, with real processes: a `dask scheduler`, `dask worker --preload
grader.distributed` processes and `grade serve` on loopback, tokens from `grade token add`.

The reports the service stores equal local `grade ex03 FILE`'s. A scheduler that goes away under a running
service loses no accepted submission and fails none: what was on the cluster is held by the service's
executor, the rest stays queued, /healthz answers 503, and everything is graded (one attempt each) once a
scheduler with workers answers at the same address again, without a restart; a service stopped while its
scheduler is away hands its held jobs back, and a new one on the same database grades them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("uvicorn")
pytest.importorskip("psutil")

from service_support import Server, free_port, token, wait_for
from test_distributed import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.service]
ROOT = Path(__file__).resolve().parents[2]
SOLUTION = (ROOT / "solutions" / "ex03.py").read_bytes()
BUGGY = {
    "no_zero_grad": (ROOT / "tests" / "submissions" / "ex03" / "bug_no_zero_grad.py").read_bytes(),
    "sum_loss": SOLUTION.replace(b"((y_pred - y) ** 2).mean()", b"((y_pred - y) ** 2).sum()"),
}
SLOW = b"import time\ntime.sleep(2.0)\n" + SOLUTION


class ClusterServer(Server):
    """`grade serve --scheduler ADDRESS` (its slots: the cluster's threads plus one per worker)."""

    def __init__(self, db_url: str, scheduler: str):
        super().__init__(db_url)
        self.scheduler = scheduler

    def start(self, wait: bool = True) -> ClusterServer:
        command = [sys.executable, "-m", "grader.cli", "serve", "--port", str(self.port), "--db", self.db_url,
                   "--scheduler", self.scheduler]
        self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=self.log, stderr=self.log)
        if wait:
            wait_for(self.healthy, 180, f"the service on {self.url} to be healthy ({self.log.name})", 0.5)
        return self

    def health(self) -> int:
        return self.get("/healthz", None).status

    def states(self, lms: str, ids: list[str]) -> dict[str, dict]:
        return {i: self.get(f"/api/v1/submissions/{i}", lms).json() for i in ids}


def _submitted(answer) -> str:
    assert answer.status == 202, answer.body
    return answer.json()["id"]


def _comparable(report: dict) -> tuple:
    return (report["score"], report["max_score"], report.get("error"),
            [(c["name"], c["status"], c.get("diagnosis"), c["score"], c["message"]) for c in report["checks"]])


def _local(tmp_path: Path, name: str, source: bytes) -> dict:
    """The report of a local `grade ex03 FILE` (its own warm worker, on this machine)."""
    path = tmp_path / name / "ex03.py"
    path.parent.mkdir(parents=True)
    path.write_bytes(source)
    done = subprocess.run([sys.executable, "-m", "grader.cli", "ex03", str(path), "--format", "json"],
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def test_serve_on_a_cluster_grades_as_locally_and_loses_nothing_when_its_scheduler_goes_away(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    lms = token(db_url, "lms")
    port = free_port()
    clusters = [Cluster(tmp_path / "c1", workers=2, port=port)]
    server = ClusterServer(db_url, clusters[0].address)
    try:
        server.start()
        # 1. correct and buggy submissions over HTTP; each report equals local grading's
        sources = {"correct": SOLUTION, **BUGGY}
        ids = {name: _submitted(server.submit(lms, "ex03", source, student=name)) for name, source in sources.items()}
        states = server.wait_finished(lms, list(ids.values()), timeout=240)
        assert {s["status"] for s in states.values()} == {"graded"}
        for name, source in sources.items():
            remote = server.get(f"/api/v1/submissions/{ids[name]}/report", lms).json()
            local = _local(tmp_path, name, source)
            assert _comparable(remote) == _comparable(local), name
            assert remote["sandbox"]["tier"] == local["sandbox"]["tier"]
            assert states[ids[name]]["score"] == local["score"]
        assert states[ids["correct"]]["score"] == states[ids["correct"]]["max_score"]
        assert all(states[ids[name]]["score"] < states[ids[name]]["max_score"] for name in BUGGY)

        # 2. the scheduler dies (its workers exit with it) while jobs are on the cluster and others queued
        held = [_submitted(server.submit(lms, "ex03", SLOW + f"\n# {i}\n".encode(), student=f"h{i}"))
                for i in range(6)]
        wait_for(lambda: any(s["status"] == "running" for s in server.states(lms, held).values()), 120,
                 "a job on the cluster")
        clusters[0].remember()
        clusters[0].scheduler.kill()
        wait_for(lambda: server.health() == 503, 60, "/healthz to say the cluster is gone")
        during = [_submitted(server.submit(lms, "ex03", SOLUTION + f"\n# d{i}\n".encode(), student=f"d{i}"))
                  for i in range(2)]  # still accepted: the database is the record
        time.sleep(5)
        waiting = server.states(lms, held + during)
        assert {s["status"] for s in waiting.values()} <= {"queued", "running"}, waiting
        assert max(s["attempts"] for s in waiting.values()) <= 1
        assert clusters[0].left_running(10) == []  # the workers, their zygotes and the jobs' children

        # 3. a scheduler and workers at the same address again: the same service grades everything, once
        clusters.append(Cluster(tmp_path / "c2", workers=1, port=port))
        states = server.wait_finished(lms, held + during, timeout=300)
        assert {(s["status"], s["score"], s["attempts"]) for s in states.values()} == {("graded", 16.0, 1)}
        wait_for(lambda: server.health() == 200, 60, "/healthz to say the cluster is back")

        # 4. gone again, and the service is stopped meanwhile: a new one on the same database grades them
        late = [_submitted(server.submit(lms, "ex03", SLOW + f"\n# l{i}\n".encode(), student=f"l{i}"))
                for i in range(3)]
        wait_for(lambda: any(s["status"] == "running" for s in server.states(lms, late).values()), 120,
                 "a job on the cluster")
        clusters[1].remember()
        clusters[1].scheduler.kill()
        wait_for(lambda: server.health() == 503, 60, "/healthz to say the cluster is gone")
        server.stop()  # SIGTERM: it hands the jobs it held back to the queue, their attempts not counted
        clusters.append(Cluster(tmp_path / "c3", workers=1, port=port))
        server = ClusterServer(db_url, clusters[2].address).start()
        states = server.wait_finished(lms, late, timeout=300)
        assert {(s["status"], s["score"], s["attempts"]) for s in states.values()} == {("graded", 16.0, 1)}
        listed = server.get("/api/v1/submissions?limit=1000", lms).json()
        assert sorted(s["id"] for s in listed) == sorted([*ids.values(), *held, *during, *late])
    finally:
        server.stop()
        for cluster in clusters:
            cluster.stop()
    assert all(cluster.left_running(30) == [] for cluster in clusters)
