"""Grading on a Dask cluster, with real processes: a `dask scheduler` and two `dask worker --preload
grader.distributed --nthreads 1` on 127.0.0.1. Every report equals local grading's; a worker SIGKILLed
mid-batch costs no report; a submission whose every worker dies ends as a graded failure after a bounded
number of tries; a scheduler that goes away stops the batch with one line and a re-run resumes; nothing
is left running afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import full_marks

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

import contextlib

from click.testing import CliRunner
from test_batch import CLASS, EXPECTED_STATUS, LIMITS, SOLUTION, gradebook_rows, make_class

from grader.classroom import batch
from grader.cli.main import main
from grader.execution.executor import Job, LocalExecutor
from grader.grading import pipeline as grading

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).parent / "dask")
MIXED = {**CLASS, "jon": ("ex01.py", (ROOT / "solutions" / "ex01.py").read_text("utf-8")),
         "kim": ("ex01.py", (ROOT / "tests" / "submissions" / "ex01" / "bug_gradient_sign.py").read_text("utf-8"))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A real scheduler and `workers` real `dask worker` processes (each with its nanny) on loopback."""

    def __init__(self, root: Path, workers: int = 2, allowed_failures: int = 1, env: dict[str, str] | None = None,
                 port: int | None = None):
        self.address = f"tcp://127.0.0.1:{port or free_port()}"
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures),
                    **(env or {})}
        self.processes: list[subprocess.Popen] = []
        self.seen: dict[int, float] = {}  # every process of the cluster ever seen: pid -> create time
        self.scheduler = self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                      self.address.rsplit(":", 1)[1], "--no-dashboard", "--preload",
                                      "grader.distributed"], "scheduler")
        for i in range(workers):
            self.add_worker(f"worker{i}")
        self.client = distributed.Client(self.address, timeout=60, set_as_default=False)
        self.client.wait_for_workers(workers, timeout=120)
        self.wait_warm()

    def _start(self, command: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**self.env, **(env or {})},
                                   cwd=ROOT)
        self.processes.append(process)
        return process

    def add_worker(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        command = [DASK, "worker", self.address, "--nthreads", "1", "--no-dashboard", "--preload",
                   "grader.distributed", "--name", name]
        return self._start(command, name, env)

    def wait_warm(self, timeout: float = 120) -> None:
        """Until each worker's preloaded zygote runs (the torch import is the slow part)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.remember()
            zygotes = [p for p in self.descendants() if "grader.sandbox.zygote" in " ".join(_cmdline(p))]
            if len(zygotes) >= len(self.client.nthreads()):
                return
            time.sleep(0.5)

    def descendants(self) -> list[psutil.Process]:
        found = []
        for process in self.processes:
            try:
                root = psutil.Process(process.pid)
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    def remember(self) -> None:
        for process in self.descendants():
            with contextlib.suppress(psutil.NoSuchProcess):
                self.seen[process.pid] = process.create_time()

    def worker_pids(self) -> dict[str, int]:
        """Dask worker address -> the pid of the worker process (its nanny's child)."""
        return dict(self.client.run(os.getpid))

    def kill_worker(self, address: str) -> None:
        os.kill(self.worker_pids()[address], signal.SIGKILL)

    def busy(self) -> list[str]:
        return [address for address, keys in self.client.processing().items()
                if any(str(k).startswith("grade-") for k in keys)]

    def stop(self) -> None:
        self.remember()
        self.client.close()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def left_running(self, within: float) -> list[str]:
        """The cluster's processes (zygotes and job children included) still alive after `within` s."""
        return _still_running(self.seen, within)


def _with_start_times(processes: list[psutil.Process]) -> dict[int, float]:
    found = {}
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            found[process.pid] = process.create_time()
    return found


def _still_running(processes: dict[int, float], within: float) -> list[str]:
    """Which of these processes (pid -> create time) are still alive, not zombies, after `within` s."""
    deadline = time.monotonic() + within
    while True:
        alive = []
        for pid, created in processes.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(_cmdline(process))[:80]}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = Cluster(tmp_path_factory.mktemp("cluster"))
    yield started
    started.stop()
    assert started.left_running(LIMITS.timeout + 30) == []


def _comparable(report: dict) -> tuple:
    if "checks" not in report:  # a .problem.json: a file that could not be graded at all
        return report["status"], report["message"]
    return (report["score"], report["max_score"], report.get("error"),
            [(c["name"], c["status"], c.get("diagnosis"), c["score"], c["message"]) for c in report["checks"]])


def test_a_class_graded_on_the_cluster_equals_local_grading(cluster, tmp_path):
    directory = make_class(tmp_path / "class", MIXED)
    options = batch.Options(jobs=0, device="cpu", limits=LIMITS, scheduler=cluster.address)
    remote = batch.run(directory, tmp_path / "remote", None, options)
    local = batch.run(directory, tmp_path / "local", None, batch.Options(jobs=2, device="cpu", limits=LIMITS))
    assert remote.graded == local.graded == len([e for e in MIXED.values() if e and e[1] is not None])
    compared = 0
    for report in sorted((tmp_path / "local").glob("*/*.json")):
        twin = tmp_path / "remote" / report.relative_to(tmp_path / "local")
        assert _comparable(json.loads(twin.read_text())) == _comparable(json.loads(report.read_text())), report
        compared += not report.name.endswith(batch.PROBLEM_SUFFIX)
    assert compared == local.graded
    assert (tmp_path / "remote" / "gradebook.csv").read_text() == (tmp_path / "local" / "gradebook.csv").read_text()
    rows = gradebook_rows(tmp_path / "remote")
    for student, status in EXPECTED_STATUS.items():
        assert status in rows[student]["status"], student
    data = json.loads((tmp_path / "remote" / "ana" / "ex03.json").read_text())
    assert data["sandbox"]["tier"] == "namespaces"  # the remote child's own hello says so
    cluster.remember()


def test_the_service_executor_on_the_cluster_makes_local_reports(cluster, tmp_path):
    from grader.execution.cluster import DaskExecutor

    path = tmp_path / "ex03.py"
    path.write_text(SOLUTION.replace("w.grad.zero_()", "pass"), "utf-8")
    with DaskExecutor(cluster.address, device="cpu", prewarm="ex03") as remote, \
            LocalExecutor(1, device="cpu") as local:
        assert remote.capacity == 4 and remote.healthy()
        job = Job("ex03", path, device="cpu", limits=LIMITS)
        there, here = remote.submit(job).result(), local.submit(job).result()
    assert there.ok and here.ok
    assert there.report.score == here.report.score < there.report.max_score
    assert [(c.status, c.diagnosis) for c in there.report.checks] == [(c.status, c.diagnosis)
                                                                      for c in here.report.checks]


def test_batch_and_service_take_the_one_dask_route(cluster, tmp_path):
    """`grade batch --scheduler` and a `grade serve --scheduler` runner build the same executor: the batch's
    keeps no more slots than it has jobs, the service's as many as it is told."""
    from grader.classroom.batch import Options, _executor
    from grader.classroom.tasks import Task
    from grader.execution.cluster import DaskExecutor
    from grader.service.runners import RunnerSpec, build_executor

    tasks = [Task("ana", "ex03", tmp_path / "ex03.py")]
    batch_side = _executor(tasks, Options(jobs=0, device="cpu", scheduler=cluster.address))
    try:
        service_side = build_executor(RunnerSpec(db_url=None, slots=2, index=0, secret="s", device="cpu",
                                                 scheduler=cluster.address))
        try:
            assert type(batch_side) is type(service_side) is DaskExecutor
            assert (batch_side.capacity, service_side.capacity) == (1, 2)
            assert batch_side.healthy() and service_side.healthy()
        finally:
            service_side.close()
    finally:
        batch_side.close()


def test_the_preloads_and_the_pool_shorten_dasks_message_batching(cluster):
    from grader.execution.cluster import DaskPool
    from grader.execution.streams import STREAM_INTERVAL_S

    pool = DaskPool(cluster.address)
    try:
        assert pool.client.scheduler_comm.interval == STREAM_INTERVAL_S
        intervals = pool.client.run_on_scheduler(lambda dask_scheduler: [
            s.interval for s in [*dask_scheduler.stream_comms.values(), *dask_scheduler.client_comms.values()]])
        assert intervals and max(intervals) <= STREAM_INTERVAL_S
        assert set(pool.client.run(lambda dask_worker=None: dask_worker.batched_stream.interval).values()) == {
            STREAM_INTERVAL_S}
    finally:
        pool.close()


def test_a_worker_killed_mid_batch_costs_no_report(cluster, tmp_path):
    slow = "import time\ntime.sleep(1.0)\n" + SOLUTION
    directory = make_class(tmp_path / "class", {f"s{i:02d}": ("ex03.py", slow + f"\n# {i}\n") for i in range(8)})
    out = tmp_path / "out"
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(r=batch.run(
        directory, out, ["ex03"], batch.Options(jobs=0, device="cpu", limits=LIMITS, scheduler=cluster.address))))
    runner.start()
    deadline = time.monotonic() + 120
    while len(list(out.glob("s*/ex03.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    below: dict[int, float] = {}
    while len(below) < 2 and time.monotonic() < deadline:  # a worker whose zygote is running a job's child
        busy = cluster.busy()
        victim = psutil.Process(cluster.worker_pids()[busy[0]]) if busy else None
        below = _with_start_times(victim.children(recursive=True)) if victim else {}
    assert busy and len(below) >= 2, "nothing was running on the cluster"
    assert any("grader.sandbox.zygote" in " ".join(_cmdline(p)) for p in victim.children())
    cluster.remember()
    cluster.kill_worker(busy[0])
    assert _still_running(below, within=3.0) == []  # they die with their worker, not at the job's timeout
    runner.join(timeout=300)
    assert result["r"].graded == 8 and result["r"].problems == 0
    assert {gradebook_rows(out)[f"s{i:02d}"]["ex03"] for i in range(8)} == {full_marks("ex03")}
    cluster.client.wait_for_workers(2, timeout=120)  # its nanny started a fresh one
    cluster.wait_warm()


def test_a_worker_killed_while_its_zygote_starts_leaves_nothing_running(cluster):
    # Between its start and its first job a zygote reads nothing from its worker (it is importing torch),
    # so only PR_SET_PDEATHSIG tells it that its worker is gone.
    nanny = cluster.add_worker("doomed")
    cluster.processes.remove(nanny)
    zygotes: list[psutil.Process] = []
    deadline = time.monotonic() + 60
    while not zygotes and time.monotonic() < deadline:
        try:
            zygotes = [p for p in psutil.Process(nanny.pid).children(recursive=True)
                       if "grader.sandbox.zygote" in " ".join(_cmdline(p))]
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    assert zygotes, "the worker started no zygote"
    worker = zygotes[0].parent()
    assert worker is not None
    everything = _with_start_times([psutil.Process(nanny.pid), *psutil.Process(nanny.pid).children(recursive=True)])
    nanny.kill()
    worker.kill()
    nanny.wait()
    assert _still_running(everything, within=2.0) == []


def test_a_submission_that_ends_every_worker_it_touches_is_a_graded_failure(cluster, tmp_path):
    # In the namespaces sandbox a submission cannot reach its Dask worker, so the test plays the part: it
    # kills whichever worker runs the submission, each time it is tried (allowed-failures 1: two tries).
    hanging = "import time\ntime.sleep(1000)\n"
    directory = make_class(tmp_path / "class", {"a_victim": ("ex03.py", hanging)})
    out = tmp_path / "out"
    limits = grading.Limits(timeout=30.0)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(r=batch.run(
        directory, out, ["ex03"], batch.Options(jobs=0, device="cpu", limits=limits, scheduler=cluster.address))))
    runner.start()
    kills = 0
    deadline = time.monotonic() + 200
    while runner.is_alive() and time.monotonic() < deadline:
        busy = cluster.busy()
        if busy:
            time.sleep(0.5)
            cluster.remember()
            cluster.kill_worker(busy[0])
            kills += 1
            while busy[0] in cluster.busy():
                time.sleep(0.1)
        time.sleep(0.2)
    runner.join(timeout=60)
    assert kills == 2  # allowed-failures + 1 tries, then KilledWorker
    report = json.loads((out / "a_victim" / "ex03.json").read_text())
    assert report["score"] == 0 and report["sandbox"]["tier"] == "failed"
    assert "ended every grading machine it ran on" in report["error"]
    assert gradebook_rows(out)["a_victim"]["status"] == "ex03: grader-failure"
    assert result["r"].graded == 1
    cluster.client.wait_for_workers(2, timeout=120)
    cluster.wait_warm()


def test_require_sandbox_refuses_a_worker_below_namespaces(cluster, tmp_path):
    directory = make_class(tmp_path / "class", {"ana": ("ex03.py", SOLUTION)})
    runner = CliRunner()
    ok = runner.invoke(main, ["batch", str(directory), "--out", str(tmp_path / "ok"), "--scheduler",
                              cluster.address, "--require-sandbox", "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    weak = cluster.add_worker("weak", env={"GRADE_WORKER_SANDBOX": "process"})
    try:
        cluster.client.wait_for_workers(3, timeout=120)
        refused = runner.invoke(main, ["batch", str(directory), "--out", str(tmp_path / "no"), "--force",
                                       "--scheduler", cluster.address, "--require-sandbox", "--device", "cpu"])
        assert refused.exit_code == 2
        assert "reaches only the 'process' sandbox tier" in refused.output
        assert refused.output.count("\n") == 1 and "Traceback" not in refused.output
    finally:
        cluster.remember()
        weak.terminate()
        weak.wait(timeout=30)
        cluster.processes.remove(weak)


def test_a_scheduler_that_goes_away_stops_the_batch_and_a_rerun_resumes(tmp_path):
    slow = "import time\ntime.sleep(1.0)\n" + SOLUTION
    directory = make_class(tmp_path / "class", {f"s{i:02d}": ("ex03.py", slow + f"\n# {i}\n") for i in range(10)})
    out = tmp_path / "out"
    first = Cluster(tmp_path / "c1", workers=1)
    command = [sys.executable, "-m", "grader.cli", "batch", str(directory), "--out", str(out), "--device", "cpu",
               "--scheduler", first.address]
    try:
        running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while len(list(out.glob("s*/ex03.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        first.remember()
        first.scheduler.kill()
        _, stderr = running.communicate(timeout=120)
    finally:
        first.stop()
    assert running.returncode == 3
    assert stderr.startswith("Error: lost the Dask scheduler at") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    kept = len(list(out.glob("s*/ex03.json")))
    assert 2 <= kept < 10
    second = Cluster(tmp_path / "c2", workers=1)
    try:
        again = subprocess.run([*command[:-1], second.address], capture_output=True, text=True, timeout=300,
                               check=False)
    finally:
        second.stop()
    assert again.returncode == 0, again.stderr
    assert f"{kept} submissions unchanged" in again.stderr
    assert {r["ex03"] for r in gradebook_rows(out).values()} == {full_marks("ex03")}
    assert first.left_running(30) == [] and second.left_running(30) == []


def test_an_unreachable_scheduler_is_one_line_and_exit_3(tmp_path):
    directory = make_class(tmp_path / "class", {"ana": ("ex03.py", SOLUTION)})
    address = f"tcp://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["batch", str(directory), "--out", str(tmp_path / "out"),
                                       "--scheduler", address])
    assert result.exit_code == 3
    assert result.output.startswith(f"Error: cannot reach the Dask scheduler at {address}")
    assert result.output.count("\n") == 1
    served = CliRunner().invoke(main, ["serve", "--scheduler", address, "--db", f"sqlite:///{tmp_path}/s.db"])
    if "service` extra" not in served.output:
        assert served.exit_code == 3 and "cannot reach the Dask scheduler" in served.output


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA and one certificate for 127.0.0.1 (scheduler, worker and grader share it here)."""
    openssl = shutil.which("openssl") or pytest.skip("needs the openssl command")
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "node", "node-key")}
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", files["ca-key"], "-out", files["ca"],
         "-days", "2", "-subj", "/CN=grader-test-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", files["node-key"], "-out", folder / "node.csr",
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", folder / "node.csr", "-CA", files["ca"], "-CAkey", files["ca-key"],
         "-CAcreateserial", "-out", files["node"], "-days", "2", "-extfile", folder / "ext.cnf"],
    ]
    for step in steps:
        subprocess.run([openssl, *map(str, step)], check=True, capture_output=True)
    return files


def test_mutual_tls_between_grader_scheduler_and_workers(tmp_path):
    files = _certificates(tmp_path / "tls")
    tls = ["--tls-ca-file", str(files["ca"]), "--tls-cert", str(files["node"]), "--tls-key", str(files["node-key"])]
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--protocol",
                                   "tls", "--no-dashboard", *tls], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, cwd=ROOT)]
    time.sleep(2)
    processes.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-dashboard", "--preload",
                                       "grader.distributed", *tls], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, cwd=ROOT))
    directory = make_class(tmp_path / "class", {"ana": ("ex03.py", SOLUTION)})
    command = [sys.executable, "-m", "grader.cli", "batch", str(directory), "--device", "cpu", "--scheduler", address]
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
           "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(files["ca"]),
           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(files["node"]),
           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(files["node-key"])}
    serve = [sys.executable, "-m", "grader.cli", "serve", "--scheduler", address, "--db",
             f"sqlite:///{tmp_path / 'service.sqlite3'}", "--port", str(free_port())]
    try:
        refused = subprocess.run([*command, "--out", str(tmp_path / "no")], capture_output=True, text=True,
                                 timeout=120, check=False)
        graded = subprocess.run([*command, "--out", str(tmp_path / "yes")], capture_output=True, text=True,
                                timeout=300, check=False, env=env)
        served = _serve_answers_healthz(serve, env) if _has_service_extra() else None
        serve_refused = subprocess.run(serve, capture_output=True, text=True, timeout=120, check=False)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    assert refused.returncode == 2 and "needs this grader's TLS certificate" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert graded.returncode == 0, graded.stderr
    assert gradebook_rows(tmp_path / "yes")["ana"]["ex03"] == full_marks("ex03")
    if served is not None:  # grade serve --scheduler takes the same TLS settings from the same variables
        assert served == 200
        assert serve_refused.returncode == 2 and "needs this grader's TLS certificate" in serve_refused.stderr


def _has_service_extra() -> bool:
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


def _serve_answers_healthz(command: list[str], env: dict[str, str]) -> int:
    """Start `grade serve`, wait until /healthz answers 200 (or it exits), stop it; the last status seen."""
    import urllib.error
    import urllib.request

    port = command[command.index("--port") + 1]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    status = 0
    try:
        deadline = time.monotonic() + 180
        while status != 200 and process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                pass
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return status
