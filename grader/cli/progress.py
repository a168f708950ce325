"""The batch's progress line on a terminal: redrawn in place by a thread, through the sanitiser."""

from __future__ import annotations

import sys
from typing import Any

import click

from grader.model import sanitize


class _BatchProgress:
    """done/total, rate and an honest ETA on stderr, redrawn every second; silent off a terminal.

    The ETA is the time per finished submission so far times what is left, recomputed as the clock runs:
    while one submission hangs for 60 s nothing finishes, so the time per submission, and the ETA, grow.
    Before the first report there is no estimate, and the line says so instead of printing 00:00:00.
    """

    def __init__(self, stream: Any = None) -> None:
        import threading

        self.stream = stream if stream is not None else sys.stderr
        self.total = 0
        self.done = 0
        self.started = self.last_done = 0.0
        self.active = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Any = None

    def start(self, to_grade: int, skipped: int) -> None:
        import threading
        import time

        if skipped:
            click.echo(f"{skipped} submissions unchanged since their report: skipped (--force regrades).", err=True)
        self.total = to_grade
        self.started = self.last_done = time.monotonic()
        if to_grade and self.stream.isatty():
            self.active = True
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def advance(self, done: Any) -> None:
        import time

        with self._lock:
            self.done += 1
            self.last_done = time.monotonic()
        self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw()

    def _draw(self) -> None:
        import time

        if not self.active:
            return
        with self._lock:  # the ticker and the batch's own thread both draw: one line at a time
            line = sanitize.text(progress_line(self.done, self.total, time.monotonic() - self.started,
                                               time.monotonic() - self.last_done))
            self.stream.write("\r" + line.ljust(79))
            self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.active:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.active = False


def progress_line(done: int, total: int, elapsed: float, since_last: float) -> str:
    """`grading 12/100  1.3/s  ETA 00:01:08`; the ETA grows while nothing finishes."""
    rate = f"{done / elapsed:.1f}/s" if done and elapsed > 0 else "-/s"
    left = total - done
    if left <= 0:
        eta = "done"
    elif not done:
        eta = f"ETA: after the first report ({_clock(elapsed)} so far)"
    else:
        eta = "ETA " + _clock(elapsed / done * left)
    waiting = f"  (no report for {since_last:.0f} s)" if done < total and since_last >= 10 else ""
    return f"grading {done}/{total}  {rate}  {eta}{waiting}"


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
