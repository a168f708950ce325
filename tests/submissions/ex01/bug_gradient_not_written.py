"""ex01 half done: forward, loss and train written, gradient still the stub's `raise NotImplementedError`.

Expected: every check that calls the student's gradient is not-implemented; the others pass (train is
graded with the reference gradient substituted).
"""

import numpy as np


def forward(w, x):
    """Prediction of the model f(x) = w * x."""
    return w * x


def loss(y, y_pred):
    """Mean squared error between targets ``y`` and predictions ``y_pred``."""
    return ((y_pred - y) ** 2).mean()


def gradient(x, y, y_pred):
    """Not done yet: still the stub's line."""
    raise NotImplementedError("gradient: return dMSE/dw")


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    """Gradient descent on w; one ``(w, loss)`` entry per epoch.

    The loss is computed from the prediction at the start of the epoch,
    w is the value after that epoch's update.
    """
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        dw = gradient(x, y, y_pred)
        # w stays a Python float (float64), as in the notebooks (NumPy 1 promoted it so); under NumPy 2
        # `learning_rate * dw` would be float32 and the printed losses would drift in the 7th digit.
        w = w - learning_rate * float(dw)
        history.append((float(w), float(l)))
    return history
