"""Correct: float64 arithmetic throughout, gradient written with np.dot and divided by N."""
import numpy as np


def forward(w, x):
    return np.float64(w) * x.astype(np.float64)


def loss(y, y_pred):
    return float(np.mean((y.astype(np.float64) - y_pred) ** 2))  # arguments swapped: same MSE


def gradient(x, y, y_pred):
    x = x.astype(np.float64)
    return 2.0 * np.dot(x, y_pred - y) / len(x)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        w = w - learning_rate * gradient(x, y, y_pred)
        history.append((w, l))
    return history
