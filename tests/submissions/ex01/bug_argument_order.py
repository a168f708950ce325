"""Bug (signature only): gradient takes (x, y_pred, y), and train calls it in that same order.

The loop is right; only the helper's signature differs from the exercise's gradient(x, y, y_pred), so only
the gradient checks lose points (argument-order), never the train checks.
"""
import numpy as np


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return np.mean((y_pred - y) ** 2)


def gradient(x, y_pred, y):
    return np.mean(2 * x * (y_pred - y))


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        dw = gradient(x, y_pred, y)
        w = w - learning_rate * dw
        history.append((w, l))
    return history
