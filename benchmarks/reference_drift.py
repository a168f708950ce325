"""How far a reference trajectory moves when the same numbers are summed in another order.

Another CPU's kernels (AVX-512 sums in 16 lanes, AVX2 in 8) change the order of a float32 reduction, not the
maths. Permuting the samples does the same to every mean in MSE and its gradient, so the drift it causes bounds
what a kernel change can do to a recording. This measures it on the solutions' own training runs (the notebook
data and the variations the checks use) and prints the largest drift in float32 ulps of the value, floored at
1/1024 of the trajectory's largest magnitude: the measure grader.grading.record.drift bounds by REFERENCE_ULPS.

    python benchmarks/reference_drift.py [--permutations 20]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

from grader.grading.record import FLOAT32_EPS, REFERENCE_FLOOR, REFERENCE_ULPS

ROOT = Path(__file__).resolve().parent.parent


def solution(exercise: str):
    spec = importlib.util.spec_from_file_location(exercise, ROOT / "solutions" / f"{exercise}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ulps(base: np.ndarray, other: np.ndarray) -> float:
    floor = REFERENCE_FLOOR * np.max(np.abs(base))
    return float(np.max(np.abs(other - base) / (FLOAT32_EPS * np.maximum(np.abs(base), floor))))


def runs():
    """(label, n_samples, train(order) -> {quantity: array})."""
    x1, y1 = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]
    ex01, ex03, ex04, ex05 = (solution(e) for e in ("ex01", "ex03", "ex04", "ex05"))

    def scalar_run(module, make, lr, n):
        def train(order):
            x, y = make(np.asarray(x1, np.float32)[order]), make(np.asarray(y1, np.float32)[order])
            history = module.train(x, y, w=0.0, learning_rate=lr, n_iters=n)
            return {"w": np.array([float(w) for w, _ in history]), "loss": np.array([float(v) for _, v in history])}
        return train

    def model_run(inputs, outputs, seed, x, y, lr, n):
        def train(order):
            torch.manual_seed(seed)
            model = ex05.LinearRegression(inputs, outputs)
            losses = ex05.train(model, torch.tensor(x)[order], torch.tensor(y)[order], lr, n)
            return {"loss": np.array(losses), "weight": model.linear.weight.detach().numpy().ravel()}
        return train

    x8 = torch.rand(8, 3, generator=torch.Generator().manual_seed(72)).tolist()
    y8 = torch.rand(8, 2, generator=torch.Generator().manual_seed(73)).tolist()
    yield "ex01 train (NumPy)", 4, scalar_run(ex01, lambda a: a, 0.01, 20)
    yield "ex03 train (autograd)", 4, scalar_run(ex03, torch.tensor, 0.01, 100)
    yield "ex04 train (SGD)", 4, scalar_run(ex04, torch.tensor, 0.01, 100)
    yield "ex05 train (1 -> 1)", 4, model_run(1, 1, 42, [[v] for v in x1], [[v] for v in y1], 0.01, 100)
    yield "ex05 train (3 -> 2)", 8, model_run(3, 2, 7, x8, y8, 0.05, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    worst = 0.0
    print(f"{'run':24}{'quantity':>10}{'max drift':>14}")
    for label, n, train in runs():
        base = train(list(range(n)))
        drifts = {q: 0.0 for q in base}
        for seed in range(args.permutations):
            other = train(list(np.random.default_rng(seed).permutation(n)))
            for quantity in base:
                drifts[quantity] = max(drifts[quantity], ulps(base[quantity], other[quantity]))
        for quantity, value in drifts.items():
            print(f"{label:24}{quantity:>10}{value:10.1f} ulps")
            worst = max(worst, value)
    print(f"worst drift {worst:.1f} ulps over {args.permutations} orders; the test's bound REFERENCE_ULPS = "
          f"{REFERENCE_ULPS} ({REFERENCE_ULPS / max(worst, 1e-9):.1f}x headroom)")


if __name__ == "__main__":
    main()
