"""The grading loops: claim, grade on the executor, heartbeat, store, requeue, deliver.

One `Dispatcher` per grading runner process (runners.py; or in the service process itself when it is given
an executor object). Its threads never touch student code: each job is written to a private temporary
folder and handed to the executor (the warm zygote pool), whose report comes back here to be stored.
Every loop survives the database going away: it waits, retries, and goes on when it answers.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import logging
import os
import queue
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Gauge, Histogram

from grader.execution.executor import Executor, Job, JobOutcome, unrun_report
from grader.grading import pipeline as grading
from grader.model.report import to_dict
from grader.service.store import MAX_ATTEMPTS, Claimed, Store, sign

log = logging.getLogger("grader.service")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
WEBHOOK_WORKERS = 8  # callbacks delivered at once
WEBHOOK_PER_HOST = 2  # ... and at most this many to one receiver (host and port): a slow one holds only these
WEBHOOK_BACKLOG = 64  # callbacks claimed from the outbox and not yet done, at most


@dataclass(frozen=True)
class Timing:
    lease_s: float = 30.0  # a job whose process stops heartbeating for this long goes back in the queue
    heartbeat_s: float = 5.0
    poll_s: float = 0.2  # how often an idle process looks for new jobs
    webhook_backoff_s: float = 5.0  # the first retry's delay; it doubles each time
    webhook_timeout_s: float = 10.0  # the whole delivery (connect, send, the answer's head), not each read

    @classmethod
    def from_environment(cls) -> Timing:
        """Shorter leases and backoffs for tests and demos (GRADE_SERVICE_LEASE_S and friends)."""
        def number(name: str, default: float) -> float:
            return float(os.environ.get(name, default))

        lease = number("GRADE_SERVICE_LEASE_S", cls.lease_s)
        return cls(lease_s=lease, heartbeat_s=number("GRADE_SERVICE_HEARTBEAT_S", min(cls.heartbeat_s, lease / 3)),
                   webhook_backoff_s=number("GRADE_SERVICE_WEBHOOK_BACKOFF_S", cls.webhook_backoff_s),
                   webhook_timeout_s=number("GRADE_SERVICE_WEBHOOK_TIMEOUT_S", cls.webhook_timeout_s))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("grade_grading_seconds", "From a submission's claim to its stored report",
                                 registry=self.registry,
                                 buckets=(0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300))
        self.submissions = Gauge("grade_submissions", "Submissions by status", ["status"], registry=self.registry)
        self.queue_depth = Gauge("grade_queue_depth", "Submissions waiting to be graded", registry=self.registry)
        self.workers = Gauge("grade_workers", "Grading slots of this process", registry=self.registry)
        self.healthy_workers = Gauge("grade_workers_healthy", "1 when a warm worker answers", registry=self.registry)


class Dispatcher:
    def __init__(self, store: Store, executor: Executor, secret: str, timing: Timing | None = None,
                 metrics: Metrics | None = None, limits: grading.Limits | None = None, webhooks: bool = True):
        self.store = store
        self.executor = executor
        self.secret = secret
        self.timing = timing or Timing()
        self.metrics = metrics or Metrics()
        self.limits = limits or grading.Limits()
        self.webhooks = webhooks  # one dispatcher per service delivers the outbox (the others grade only)
        self.owner = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._slots = threading.Semaphore(executor.capacity)
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._scratch = Path(tempfile.mkdtemp(prefix="grade-service-"))
        self._threads: list[threading.Thread] = []
        self.database_ok = True

    def start(self) -> None:
        loops = [("claim", self._claim_loop), ("store", self._store_loop), ("heartbeat", self._heartbeat_loop)]
        if self.webhooks:
            loops.append(("webhooks", self._webhook_loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"grade-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop claiming and hand this process's running jobs back to the queue (an attempt not counted)."""
        self.stop.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        try:
            self.store.release(self.owner)
        except Exception as exc:  # noqa: BLE001 - the database is away: the leases will expire instead
            log.warning("could not hand running jobs back (%s); their leases will expire", exc)
        shutil.rmtree(self._scratch, ignore_errors=True)

    # ---- retrying on a database that went away
    def _retrying(self, what: str, action, wait: float = 0.5):
        """Run `action()` until it succeeds or the service stops; the database may come back at any time."""
        delay = wait
        while not self.stop.is_set():
            try:
                value = action()
                self.database_ok = True
                return value
            except Exception as exc:  # noqa: BLE001 - the database is down, or restarting
                self.database_ok = False
                log.warning("%s: the database did not answer (%s); retrying in %.1f s", what,
                            str(exc).splitlines()[0][:200], delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 5.0)
        return None

    # ---- claiming and grading
    def _claim_loop(self) -> None:
        while not self.stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            claimed = self._retrying("claim", self._reap_and_claim)
            if claimed is None:
                self._slots.release()
                self.wake.wait(self.timing.poll_s)
                self.wake.clear()
                continue
            self._start(claimed)

    def _reap_and_claim(self) -> Claimed | None:
        for stale in self.store.expired():
            self._expired(stale)
        return self.store.claim(self.owner, self.timing.lease_s)

    def _expired(self, stale: Claimed) -> None:
        """A lease ran out: its process died (perhaps killed by this very submission) or lost the database."""
        if stale.attempts >= MAX_ATTEMPTS:
            report = self._failure_report(stale, f"the grader stopped while grading your submission "
                                                 f"{stale.attempts} times; it was not graded. Please report this.")
            if self.store.finish(stale.id, None, "failed", report, self.secret, "lease expired"):
                log.warning("submission %s failed after %d attempts", stale.id, stale.attempts)
        else:
            self.store.requeue(stale, "lease expired")

    def _start(self, claimed: Claimed) -> None:
        started = time.monotonic()
        folder = self._scratch / claimed.id
        path = folder / self._filename(claimed)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(claimed.content)
            future = self.executor.submit(Job(claimed.exercise, path, limits=self.limits))
        except Exception as exc:  # noqa: BLE001 - the scratch disk or the executor broke: not the submission
            future = Future()
            future.set_result(JobOutcome(None, True, f"{type(exc).__name__}: {exc}"))
        future.add_done_callback(lambda f: self._finished(claimed, started, f))

    def _finished(self, claimed: Claimed, started: float, future: Future) -> None:
        """The executor's slot is free again: claim the next job while this one's report is being stored
        (the lease is still ours until the report is in: the heartbeat covers it)."""
        self._done.put((claimed, started, future))
        self._slots.release()
        self.wake.set()

    @staticmethod
    def _filename(claimed: Claimed) -> str:
        suffix = ".ipynb" if claimed.filename.lower().endswith(".ipynb") else ".py"
        return f"{claimed.exercise}{suffix}"

    def _store_loop(self) -> None:
        while not (self.stop.is_set() and self._done.empty()):
            try:
                claimed, started, future = self._done.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._retrying("store", lambda c=claimed, f=future: self._store(c, f.result()))
                self.metrics.latency.observe(time.monotonic() - started)
            finally:
                shutil.rmtree(self._scratch / claimed.id, ignore_errors=True)

    def _store(self, claimed: Claimed, outcome: JobOutcome) -> None:
        if outcome.report is not None and not outcome.worker_failed:
            self.store.finish(claimed.id, self.owner, "graded", self._as_stored(claimed, outcome.report),
                              self.secret)
            return
        why = outcome.problem or (outcome.report.error if outcome.report else None) or "the grading worker failed"
        if claimed.attempts < MAX_ATTEMPTS:
            self.store.requeue(claimed, why, owner=self.owner)
            return
        report = self._as_stored(claimed, outcome.report) if outcome.report else self._failure_report(claimed, why)
        self.store.finish(claimed.id, self.owner, "failed", report, self.secret, why)

    def _as_stored(self, claimed: Claimed, report) -> dict:
        data = to_dict(report)
        data["submission"]["path"] = claimed.filename  # the name it was uploaded as, not our scratch path
        return data

    def _failure_report(self, claimed: Claimed, why: str) -> dict:
        folder = self._scratch / f"{claimed.id}-failed"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self._filename(claimed)
        try:
            path.write_bytes(claimed.content)
            report = unrun_report(claimed.exercise, path, why, self.limits)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return self._as_stored(claimed, report)

    def _heartbeat_loop(self) -> None:
        while not self.stop.wait(self.timing.heartbeat_s):
            try:
                self.store.heartbeat(self.owner, self.timing.lease_s)
                self.database_ok = True
            except Exception as exc:  # noqa: BLE001 - keep beating; the database may come back
                self.database_ok = False
                log.warning("heartbeat: the database did not answer (%s)", str(exc).splitlines()[0][:200])

    # ---- webhooks
    def _webhook_loop(self) -> None:
        """Claim due callbacks and deliver them concurrently: WEBHOOK_WORKERS at once, at most WEBHOOK_PER_HOST
        to one receiver, each under one total deadline. Claimed callbacks wait here, per receiver, for a free
        slot of theirs, so a stalling receiver delays only its own callbacks and a fast one is not held back
        behind the cap of another."""
        pool = ThreadPoolExecutor(WEBHOOK_WORKERS, thread_name_prefix="grade-callback")
        lock = threading.Lock()
        kick = threading.Event()
        in_flight: dict[str, int] = {}  # receiver (host:port) -> deliveries to it now
        waiting: dict[str, collections.deque] = {}  # receiver -> claimed callbacks waiting for a slot of its own
        known: set[int] = set()  # the ids waiting or in flight (a hold that runs out must not deliver one twice)
        busy = [0]

        def one(item: tuple[int, str, str, int, str], host: str) -> None:
            webhook_id, url, body, _attempts, delivery = item
            try:
                delivered, error = deliver(url, body.encode("utf-8"), self.secret, self.timing.webhook_timeout_s,
                                           delivery)
                self._retrying("webhook", lambda: self.store.webhook_done(webhook_id, delivered, error,
                                                                          self.timing.webhook_backoff_s))
            finally:
                with lock:
                    in_flight[host] -= 1
                    busy[0] -= 1
                    known.discard(webhook_id)
                kick.set()

        try:
            while not self.stop.is_set():
                kick.wait(0.5)
                kick.clear()
                with lock:
                    room = WEBHOOK_BACKLOG - len(known)
                if room > 0:
                    try:
                        due = self.store.due_webhooks(hold_s=max(60.0, self.timing.webhook_timeout_s * 6),
                                                      limit=room)
                    except Exception as exc:  # noqa: BLE001 - the database is away; the outbox keeps them
                        log.warning("webhooks: the database did not answer (%s)", str(exc).splitlines()[0][:200])
                        due = []
                    with lock:
                        for item in due:
                            if item[0] not in known:
                                known.add(item[0])
                                waiting.setdefault(urlsplit(item[1]).netloc.lower(), collections.deque()).append(item)
                with lock:
                    for host, queue_ in waiting.items():
                        while queue_ and busy[0] < WEBHOOK_WORKERS and in_flight.get(host, 0) < WEBHOOK_PER_HOST:
                            in_flight[host] = in_flight.get(host, 0) + 1
                            busy[0] += 1
                            pool.submit(one, queue_.popleft(), host)
                    for host in [h for h, q in waiting.items() if not q]:
                        del waiting[host]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def deliver(url: str, body: bytes, secret: str, deadline_s: float, delivery: str = "") -> tuple[bool, str | None]:
    """POST a signed callback; (True, None) on a 2xx answer, else (False, why). The whole delivery has one
    deadline: when it passes, the socket is shut down under whatever read or write is waiting (a receiver
    that answers a byte every few seconds is cut off, not waited for read by read). Redirects are not
    followed: the receiver is the URL it was given."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False, "not an http(s) URL"
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        connection = kind(parts.hostname, parts.port, timeout=deadline_s)
    except (ValueError, OSError) as exc:
        return False, str(exc)[:300]
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline_s, cut)
    timer.daemon = True
    timer.start()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "X-Grade-Signature": sign(body, secret),
            "X-Grade-Delivery": delivery, "User-Agent": "dl-grader-service"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        why = f"no answer within the delivery's deadline of {deadline_s:g} s" if expired.is_set() else str(exc)
        return False, why[:300]
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():
        return False, f"no answer within the delivery's deadline of {deadline_s:g} s"
    return (True, None) if 200 <= status < 300 else (False, f"HTTP {status}")


def report_json(text: str | None) -> dict | None:
    return json.loads(text) if text else None
