"""ex04 — Loss and optimizer from PyTorch.

Fit f(x) = w * x by gradient descent using PyTorch's building blocks:
``nn.MSELoss`` for the loss and ``torch.optim.SGD`` for the update.

Implement the two functions below (replace each ``raise NotImplementedError``).
Use only the arguments you are given (no global data), and create tensors on
``x.device`` so your code also runs on a GPU.
Check your work with ``grade ex04``; ask for a hint with ``grade hint ex04``.
"""

import torch
import torch.nn as nn


def forward(w, x):
    """Prediction of the model f(x) = w * x.

    Args:
        w: the weight, a 0-d tensor.
        x: 1-D float32 tensor of inputs.

    Returns:
        Tensor shaped like ``x``: the predictions w * x.
    """
    raise NotImplementedError("forward: return the prediction w * x")


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    """Gradient descent on w with nn.MSELoss and torch.optim.SGD.

    Each epoch: predict with ``forward``, compute the loss, call ``backward()``,
    ``optimizer.step()``, then ``optimizer.zero_grad()``.

    Args:
        x: 1-D float32 tensor of inputs (on any device).
        y: 1-D float32 tensor of targets (same device as ``x``).
        w: initial weight, a Python float.
        learning_rate: step size (the optimizer's ``lr``).
        n_iters: number of epochs.

    Returns:
        List of ``n_iters`` tuples ``(w, loss)``: the loss computed at the start of the
        epoch (before the update) and w after that epoch's update.
    """
    raise NotImplementedError("train: implement the loop with nn.MSELoss and torch.optim.SGD")
