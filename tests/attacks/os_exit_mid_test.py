"""Attack: os._exit(0) in the middle of the tests, so no later result is sent. Expected: the checks that
never reported get no points; the run is reported as ended early."""
import os


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    os._exit(0)
