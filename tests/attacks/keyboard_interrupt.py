"""Attack: KeyboardInterrupt (raised, and SIGINT sent to itself). Expected: an error for that check only."""
import os
import signal


def forward(w, x):
    return w * x


def loss(y, y_pred):
    os.kill(os.getpid(), signal.SIGINT)
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    raise KeyboardInterrupt
