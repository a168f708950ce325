"""ex03 — Linear regression with autograd.

Fit f(x) = w * x by gradient descent, with a hand-written prediction and MSE
loss, but with the gradient computed by autograd (``loss.backward()``).

Implement the three functions below (replace each ``raise NotImplementedError``).
Use only the arguments you are given (no global data), and create tensors on
``x.device`` so your code also runs on a GPU.
Check your work with ``grade ex03``; ask for a hint with ``grade hint ex03``.
"""

import torch


def forward(w, x):
    """Prediction of the model f(x) = w * x.

    Args:
        w: the weight, a 0-d tensor.
        x: 1-D float32 tensor of inputs.

    Returns:
        Tensor shaped like ``x``: the predictions w * x.
    """
    raise NotImplementedError("forward: return the prediction w * x")


def loss(y, y_pred):
    """Mean squared error.

    Args:
        y: 1-D tensor of targets.
        y_pred: 1-D tensor of predictions, same shape as ``y``.

    Returns:
        0-d tensor: the mean over samples of (y_pred - y) ** 2.
    """
    raise NotImplementedError("loss: return the mean squared error")


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    """Gradient descent on w with gradients from autograd.

    Each epoch: predict with ``forward``, compute ``loss``, call ``backward()``,
    update w under ``torch.no_grad()``, then zero w.grad.

    Args:
        x: 1-D float32 tensor of inputs (on any device).
        y: 1-D float32 tensor of targets (same device as ``x``).
        w: initial weight, a Python float.
        learning_rate: step size.
        n_iters: number of epochs.

    Returns:
        List of ``n_iters`` tuples ``(w, loss)``: the loss computed at the start of the
        epoch (before the update) and w after that epoch's update.
    """
    raise NotImplementedError("train: implement the training loop with loss.backward()")
