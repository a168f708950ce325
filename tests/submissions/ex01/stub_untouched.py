"""ex01 — Gradient descent by hand (NumPy).

Fit f(x) = w * x to data by gradient descent, computing everything yourself:
the prediction, the mean-squared-error loss, its gradient dMSE/dw and the update.

Implement the four functions below (replace each ``raise NotImplementedError``).
Use only the arguments you are given: no global data, no hard-coded numbers.
Check your work with ``grade ex01``; ask for a hint with ``grade hint ex01``.
"""

import numpy as np


def forward(w, x):
    """Prediction of the model f(x) = w * x.

    Args:
        w: the weight, a scalar.
        x: 1-D float32 array of inputs.

    Returns:
        Array shaped like ``x``: the predictions w * x.
    """
    raise NotImplementedError("forward: return the prediction w * x")


def loss(y, y_pred):
    """Mean squared error.

    Args:
        y: 1-D array of targets.
        y_pred: 1-D array of predictions, same shape as ``y``.

    Returns:
        Scalar: the mean over samples of (y_pred - y) ** 2.
    """
    raise NotImplementedError("loss: return the mean squared error")


def gradient(x, y, y_pred):
    """Gradient of the MSE with respect to w.

    dMSE/dw = mean(2 * x * (y_pred - y)): a mean over samples, not a sum.

    Args:
        x: 1-D array of inputs.
        y: 1-D array of targets.
        y_pred: 1-D array of predictions w * x.

    Returns:
        Scalar: dMSE/dw.
    """
    raise NotImplementedError("gradient: return dMSE/dw = mean(2*x*(y_pred - y))")


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    """Run gradient descent on w.

    Each epoch: predict with ``forward``, compute ``loss`` and ``gradient`` from that
    prediction, then update w = w - learning_rate * gradient.

    Args:
        x: 1-D float32 array of inputs.
        y: 1-D float32 array of targets.
        w: initial weight.
        learning_rate: step size.
        n_iters: number of epochs.

    Returns:
        List of ``n_iters`` tuples ``(w, loss)``: the loss computed at the start of the
        epoch (before the update) and w after that epoch's update.
    """
    raise NotImplementedError("train: implement the gradient-descent loop")
