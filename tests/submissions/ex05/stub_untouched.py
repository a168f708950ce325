"""ex05 — A PyTorch model.

Write linear regression as an ``nn.Module`` holding one ``nn.Linear`` layer,
and a training loop that trains it in place with ``nn.MSELoss`` and
``torch.optim.SGD``.

Implement the class's two methods and ``train`` below (replace each
``raise NotImplementedError``). Use only the arguments you are given (no global
data or models).
Check your work with ``grade ex05``; ask for a hint with ``grade hint ex05``.
"""

import torch
import torch.nn as nn


class LinearRegression(nn.Module):
    """Linear regression y = x @ W.T + b as a PyTorch module."""

    def __init__(self, input_dim, output_dim):
        """Create the model's single layer.

        Call ``super().__init__()`` first, then create exactly one
        ``nn.Linear(input_dim, output_dim)`` stored as ``self.linear``.

        Args:
            input_dim: number of input features (columns of x).
            output_dim: number of outputs (columns of y).
        """
        raise NotImplementedError("__init__: call super().__init__() and create self.linear")

    def forward(self, x):
        """Prediction of the model.

        Args:
            x: float32 tensor of shape (n, input_dim).

        Returns:
            Tensor of shape (n, output_dim).
        """
        raise NotImplementedError("forward: return the layer's output for x")


def train(model, x, y, learning_rate=0.01, n_iters=100):
    """Train ``model`` in place with nn.MSELoss and torch.optim.SGD.

    Each epoch: predict with ``model(x)``, compute the loss, call ``backward()``,
    ``optimizer.step()``, then ``optimizer.zero_grad()``.

    Args:
        model: a LinearRegression (already on the same device as x and y).
        x: float32 tensor of shape (n, input_dim).
        y: float32 tensor of shape (n, output_dim).
        learning_rate: step size (the optimizer's ``lr``).
        n_iters: number of epochs.

    Returns:
        List of ``n_iters`` losses: each computed at the start of its epoch, before
        that epoch's update.
    """
    raise NotImplementedError("train: implement the loop with nn.MSELoss and torch.optim.SGD")
