"""Bug: the loss is recomputed after the update, so the history is one epoch late."""
import numpy as np


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def gradient(x, y, y_pred):
    return np.mean(2 * x * (y_pred - y))


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        w = w - learning_rate * gradient(x, y, forward(w, x))
        history.append((w, loss(y, forward(w, x))))
    return history
