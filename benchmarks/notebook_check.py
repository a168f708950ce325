"""What `check` costs in a notebook, side by side with a bare `import torch`, in one run (issue: in the notebook).

Each round starts fresh kernels (ipykernel, through jupyter_client, as Jupyter does):
- kernel A times a bare `import torch`: the baseline every student already waits for;
- kernel B runs the reference ex03 solution (its `import torch` included, untimed), then times
  `from grader.notebook import check; check("ex03")` back to back (the worst case: no typing time for the
  warm worker to start in), then --repeats more checks, and reads its own resident memory (VmRSS) before
  the import and after the last check.
Printed: medians over the rounds and their ratios against the goals: first check <= 1.3x the import,
repeated check <= 0.3 s, the kernel's memory grows < 20 MiB (grader.notebook never imports torch into it).

    python benchmarks/notebook_check.py [--rounds 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
RSS = "int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) / 1024"


def run(client, code: str, timeout: float = 600) -> str:
    """Execute `code` in the kernel; its stdout."""
    msg_id = client.execute(code)
    printed = []
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(printed)


def import_torch_s() -> float:
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        return float(run(client, "import time\nt = time.perf_counter()\nimport torch\n"
                                 "print(time.perf_counter() - t)"))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def checks(repeats: int) -> dict[str, float]:
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        run(client, SOLUTION + f"\nimport time\nrss_before = {RSS}")
        first = float(run(client, "t = time.perf_counter()\nfrom grader.notebook import check\n"
                                  "r = check('ex03')\nprint(time.perf_counter() - t)"))
        again = []
        for _ in range(repeats):
            again.append(float(run(client, "t = time.perf_counter()\nr = check('ex03')\n"
                                           "print(time.perf_counter() - t)")))
        state = json.loads(run(client, f"import json, sys\nprint(json.dumps({{'rss': {RSS} - rss_before, "
                                       "'score': r.score, 'max': r.max_score, "
                                       "'numpy': 'numpy' in sys.modules}))"))
        return {"first": first, "again": statistics.median(again), "rss": state["rss"],
                "score": state["score"], "max": state["max"]}
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    imports, firsts, agains, rss = [], [], [], []
    for _ in range(args.rounds):  # taking turns, so a change in the machine's load hits both alike
        imports.append(import_torch_s())
        measured = checks(args.repeats)
        assert measured["score"] == measured["max"], measured
        firsts.append(measured["first"])
        agains.append(measured["again"])
        rss.append(measured["rss"])
    base = statistics.median(imports)
    first, again, grown = statistics.median(firsts), statistics.median(agains), statistics.median(rss)
    print(f"{'measure':<44} {'median':>9} {'ratio':>7}  goal")
    print(f"{'bare `import torch` in a fresh kernel':<44} {base:>8.2f}s {1.0:>7.2f}")
    print(f"{'first check in a fresh kernel (import+check)':<44} {first:>8.2f}s {first / base:>7.2f}  <= 1.30x"
          f" {'met' if first / base <= 1.3 else 'NOT met'}")
    print(f"{'repeated check':<44} {again:>8.2f}s {again / base:>7.2f}  <= 0.30 s"
          f" {'met' if again <= 0.3 else 'NOT met'}")
    print(f"{'kernel RSS growth (MiB)':<44} {grown:>8.1f}  {'':>7}  < 20 MiB {'met' if grown < 20 else 'NOT met'}")
    print(f"rounds: {args.rounds}; repeats per round: {args.repeats}")


if __name__ == "__main__":
    main()
