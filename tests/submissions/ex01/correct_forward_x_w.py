"""Correct: forward written as forward(x, w) and loss as loss(y_pred, y): the product and the square are
symmetric, so the exercise's order gives the same numbers."""
import numpy as np


def forward(x, w):
    return x * w


def loss(y_pred, y):
    return np.mean((y - y_pred) ** 2)


def gradient(x, y, y_pred):
    return (2 * x * (y_pred - y)).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        y_pred = forward(x, w)
        l = loss(y_pred, y)
        w = w - learning_rate * gradient(x, y, y_pred)
        history.append((w, l))
    return history
