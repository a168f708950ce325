"""Bug: w updated once per sample inside each epoch (stochastic gradient descent), not once per epoch."""
import numpy as np


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return np.mean((y_pred - y) ** 2)


def gradient(x, y, y_pred):
    return np.mean(2 * x * (y_pred - y))


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        l = loss(y, forward(w, x))
        for i in range(len(x)):
            xi, yi = x[i:i + 1], y[i:i + 1]
            w = w - learning_rate * gradient(xi, yi, forward(w, xi))
        history.append((float(w), float(l)))
    return history
