"""Attack: a double-forked daemon that takes the spare child's name (grader-spare), ignores SIGTERM and
waits to be mistaken for the spare that runs the next student's job.
Expected: the name buys nothing; it is killed with the rest of the tree, and the worker's one spare is its
own."""
import os
import signal
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            with open("/proc/self/comm", "w") as comm:
                comm.write("grader-spare")
        except OSError:
            pass
        while True:
            time.sleep(0.05)
    os._exit(0)


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(0.0, 0.0)] * n_iters
