"""Attack: a fork bomb in train. Expected: the process count is capped (pids cgroup, else RLIMIT_NPROC),
train's call budget (or the wall clock) ends it, and every process dies with it."""
import os


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    while True:
        try:
            os.fork()
        except OSError:
            pass
