"""Mutation analysis of every exercise: how many one-mistake mutants of each reference solution the checks catch,
how many they name, and how many codes they give that name another mistake.

Each mutant is graded exactly as `grade mutants EX` grades it (grader/authoring/mutants.py: the warm, sandboxed
pool `grade batch` uses). Prints a Markdown table for docs/authoring.md, with the date and the command, then each
mutant that was not caught, not named or given a false code.

    python benchmarks/mutants.py [--jobs 2] [EX ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from grader.authoring.mutants import analyse
from grader.course import exercises


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exercise_ids", nargs="*", metavar="EX")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    ids = args.exercise_ids or exercises.exercise_ids()
    analyses = [analyse(e, jobs=args.jobs) for e in ids]
    command = "python benchmarks/mutants.py" + (f" {' '.join(args.exercise_ids)}" if args.exercise_ids else "")
    load = os.getloadavg()[0]
    print(f"Measured {datetime.date.today().isoformat()}, load average {load:.1f}: `{command}`.\n")
    print("| exercise | mutants | equivalent | caught / total | named / nameable | caught, no code yet | false codes |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for a in analyses:
        unnamed = sum(m.caught and m.expected_code is None for m in a.live)
        rows.append((a.exercise, len(a.mutants), len(a.mutants) - a.total, a.caught, a.total, a.named, a.nameable,
                     unnamed, a.false_codes))
    if len(rows) > 1:
        rows.append(("all", *(sum(column) for column in list(zip(*rows, strict=True))[1:])))
    for name, count, equivalent, caught, total, named, nameable, unnamed, false in rows:
        print(f"| {name} | {count} | {equivalent} | {caught} / {total} | {named} / {nameable} | {unnamed} | {false} |")
    print()
    for a in analyses:
        for m in a.live:
            if not m.caught or not m.named or m.false_codes:
                why = "NOT CAUGHT" if not m.caught else "false codes " + ", ".join(m.false_codes) \
                    if m.false_codes else f"unnamed (would be `{m.intended_code}`)"
                print(f"- {a.exercise} line {m.line} {m.operator}: {why}")
    return 0 if all(a.sound for a in analyses) else 1


if __name__ == "__main__":
    sys.exit(main())
