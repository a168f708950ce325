"""Attack: print gigabytes (stops by itself at 2 GiB). Expected: the output file is capped, the report
keeps 64 KiB of it, the grader is fine."""
import sys

LINE = "spam " * 200000 + "\n"


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    for _ in range(2 * 1024):
        sys.stdout.write(LINE)
        sys.stderr.write(LINE)
    return [(0.0, 0.0)] * n_iters
