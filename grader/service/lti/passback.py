"""The score outbox's loop: scores reach the platforms' gradebooks, once each, whatever stops when.

It runs in the service process (`grade serve`), in a thread: every POLL_S it marks the newly graded LTI
submissions considered and queues the scores of those that count (store.enqueue_scores: best or latest as
GRADE_SERVICE_GRADEBOOK says), in one transaction; then it claims the due scores and posts them, several at
once. A platform that does not answer (or answers 5xx, 429) is tried again with backoff (the delay doubles,
kept in the database, so a restart goes on where it was) for a day; one that refuses the score (any other
4xx) has its answer recorded and shown on the class page, and is not asked again.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from grader.service.lti import platform as lti_platform

log = logging.getLogger("grader.service")
POLL_S = 0.2
WORKERS = 8
HOLD_S = 60.0  # a claimed score is left alone by other processes this long


class Passback:
    def __init__(self, lti: Any, gradebook: str, backoff_s: float):
        self.lti = lti
        self.gradebook = gradebook
        self.backoff_s = backoff_s
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._platforms: dict[int, Any] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="grade-lti-scores", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _loop(self) -> None:
        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="grade-lti-score")
        try:
            while not self.stop.is_set():
                try:
                    self.lti.store.enqueue_scores(self.gradebook)
                    due = self.lti.store.due_scores(HOLD_S, limit=4 * WORKERS)
                except Exception as exc:  # noqa: BLE001 - the database is away; the outbox keeps them
                    log.warning("LTI scores: the database did not answer (%s)", str(exc).splitlines()[0][:200])
                    due = []
                if due:
                    list(pool.map(self._one, due))
                    continue  # more may be due
                self.wake.wait(POLL_S)
                self.wake.clear()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _platform(self, platform_id: int) -> Any:
        found = self._platforms.get(platform_id)
        if found is None:
            found = self.lti.store.platform(platform_id)
            if found is not None:
                self._platforms[platform_id] = found
        return found

    def _one(self, item: tuple[int, int, str, str]) -> None:
        score_id, platform_id, lineitem, body = item
        refused, error, delivered = None, None, False
        platform = self._platform(platform_id)
        if platform is None:
            refused, error = 0, "the platform was removed"
        else:
            try:
                lti_platform.post_score(self.lti.http, self.lti.tokens, platform, lineitem, body)
                delivered = True
            except lti_platform.PlatformError as exc:
                error = str(exc)
                if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 408, 429):
                    refused = exc.status
                log.warning("LTI score %d to %s: %s", score_id, lineitem, error)
        try:
            self.lti.store.score_done(score_id, delivered, refused, error, self.backoff_s)
        except Exception as exc:  # noqa: BLE001 - its hold runs out and it is tried again
            log.warning("LTI score %d: could not record the outcome (%s)", score_id, str(exc).splitlines()[0][:200])
