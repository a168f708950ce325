"""The notebook's grading host: a process beside the kernel that grades what the kernel ran, warm.

`python -m grader.notebook.host KERNEL_PID`, started by `grader.notebook` at import. It is the trusted
parent of `grade EX FILE` for the kernel: it starts the warm sandboxed workers at once (torch's import
overlaps the student's typing), writes the cells the kernel ran to a private notebook file, grades it with
`grading.grade` (the same sandbox, checks and report), and answers with the report, its HTML fragment and
its text. The student's code never runs here, nor in the kernel: it runs in the workers' sandboxed children.

It lives as long as the kernel: it exits when its standard input closes (the kernel ended or let it go),
and PR_SET_PDEATHSIG ends it if the kernel is killed outright; its workers end with it the same way. One
JSON request a line on stdin, one JSON answer a line on the original stdout (the grading code's own prints
go to stderr instead, so they can never corrupt an answer).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from grader.sandbox.client import SANDBOX_CHOICES, ZygoteClient
from grader.sandbox.proctree import die_with_parent


class Host:
    def __init__(self) -> None:
        # The torch worker first, so its import runs while this process imports the grader; NumPy's worker
        # (ex01) starts in a fraction of that when first asked for, and would only slow torch's down now.
        self.workers: dict[str, ZygoteClient] = {"torch": self._start("torch")}
        self.scratch = Path(tempfile.mkdtemp(prefix="grader-notebook-"))

    @staticmethod
    def _start(framework: str) -> ZygoteClient:
        # GRADE_NOTEBOOK_SANDBOX: a weaker tier asked for (as `--sandbox` asks `grade`), e.g. to see what a
        # hosted notebook without user namespaces shows; "auto" picks the strongest that works here.
        sandbox = os.environ.get("GRADE_NOTEBOOK_SANDBOX", "auto")
        return ZygoteClient(framework, want_cuda=framework == "torch", die_with_parent=True,
                      sandbox=sandbox if sandbox in SANDBOX_CHOICES else "auto")

    def worker(self, exercise_id: str) -> ZygoteClient:
        from grader.course import exercises

        framework = exercises.framework_of(exercise_id)
        worker = self.workers.get(framework)
        if worker is None or not worker.alive:
            if worker is not None:
                worker.close()
            worker = self.workers[framework] = self._start(framework)
        return worker

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "check":
            return self.check(str(request["exercise"]), str(request["notebook"]), set(request.get("defined", [])))
        if op == "render":
            return self.render(request["report"], set(request.get("defined", [])))
        if op == "hint":
            return self.hint(str(request["exercise"]), request.get("number"))
        if op == "exercises":
            return self.exercises()
        if op == "ping":
            return {"ok": True}
        return {"error": f"unknown request {op!r}"}

    def exercises(self) -> dict[str, Any]:
        from grader.course import exercises

        listed = []
        for exercise_id in exercises.exercise_ids():
            exercise = exercises.load(exercise_id)
            listed.append({"id": exercise.id, "title": exercise.title, "functions": list(exercise.functions)})
        return {"exercises": listed}

    def check(self, exercise_id: str, notebook: str, defined: set[str]) -> dict[str, Any]:
        from dataclasses import replace

        from grader.course import exercises
        from grader.grading import pipeline as grading
        from grader.model.report import Submission, grader_failed, to_dict
        from grader.notebook import view
        from grader.sandbox.client import SandboxFailure

        try:
            exercise = exercises.load(exercise_id)
        except KeyError:
            known = ", ".join(exercises.exercise_ids())
            return {"error": f"there is no exercise {exercise_id!r}; the exercises are {known}."}
        path = self.scratch / f"{exercise.id}.ipynb"
        path.write_text(notebook, "utf-8")
        worker = self.worker(exercise.id)
        try:
            report = grading.grade(exercise.id, path, worker=worker, include_hidden=False)
        except SandboxFailure as exc:
            worker.kill()
            report = grading.failure_report(exercise.id, path, str(exc))
        except grading.DeviceUnavailable as exc:
            return {"error": str(exc)}
        finally:
            path.unlink(missing_ok=True)
        if not worker.alive or grader_failed(report):
            worker.kill()  # a fresh one for the next check
        report = replace(report, submission=Submission("this kernel's cells", report.submission.sha256,
                                                       "ipynb", report.submission.size))
        context = view.context_for(report, exercise, defined)
        return {"report": to_dict(report), **self._views(report, context)}

    def render(self, data: dict[str, Any], defined: set[str]) -> dict[str, Any]:
        """A submission's report (the service's student view) as the notebook shows it."""
        from grader.course import exercises
        from grader.model.report import from_dict, student_view, validation_errors
        from grader.notebook import view

        problems = validation_errors(data)
        if problems:
            return {"error": f"the service's report does not validate ({problems[0]})."}
        report = student_view(from_dict(data))
        context = view.context_for(report, exercises.load(report.exercise), defined, submitted=True)
        return self._views(report, context)

    @staticmethod
    def _views(report: Any, context: Any) -> dict[str, Any]:
        from grader.notebook import view

        return {"html": view.html_fragment(report, context), "text": view.text(report, context),
                "summary": view.summary_line(report, context), "score": report.score,
                "max_score": report.max_score, "passed": report.full_marks}

    def hint(self, exercise_id: str, number: Any) -> dict[str, Any]:
        from grader.course import exercises, hints

        if exercise_id not in exercises.exercise_ids():
            return {"error": f"there is no exercise {exercise_id!r}."}
        total = len(hints.load(exercise_id))
        if number is not None and (not isinstance(number, int) or not 1 <= number <= max(total, 1)):
            return {"error": f"{exercise_id} has hints 1 to {total}; there is no hint {number}."}
        markdown = hints.next_hint_text(exercise_id, number=number)
        from grader.formats.html import inline_markdown

        html = "".join(f"<p>{inline_markdown(p)}</p>" for p in markdown.split("\n\n") if p.strip())
        return {"text": hints.for_terminal(markdown, 88), "html": html}

    def close(self) -> None:
        for worker in self.workers.values():
            worker.release()
        for worker in self.workers.values():
            worker.close()


def main() -> None:
    die_with_parent(int(sys.argv[1]))
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # stray prints of the grading code: never into an answer
    host = Host()
    try:
        for line in sys.stdin:
            request = None
            try:
                request = json.loads(line)
                answer = host.handle(request)
            except Exception as exc:  # noqa: BLE001 - one request's failure is its answer, never the host's end
                answer = {"error": f"the grader failed ({type(exc).__name__}: {exc}); please report it."}
            answer["id"] = request.get("id") if isinstance(request, dict) else None
            answers.write(json.dumps(answer) + "\n")
    finally:
        host.close()


if __name__ == "__main__":
    main()
