"""Attack: a thread that keeps running (and tampering) after train returns.
Expected: it dies with the child; nothing is left behind."""
import threading
import time


def _tamper(history):
    while True:
        for i in range(len(history)):
            history[i] = (2.0, 0.0)
        time.sleep(0.001)


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    history = [(0.0, 0.0)] * n_iters
    threading.Thread(target=_tamper, args=(history,)).start()  # not a daemon thread, on purpose
    return history
