"""Reference solution for ex05: a PyTorch model.

A linear-regression ``nn.Module`` wrapping one ``nn.Linear``, trained in place
with ``nn.MSELoss`` and ``torch.optim.SGD``.
"""

import torch
from torch import nn


class LinearRegression(nn.Module):
    """y = x @ W.T + b, a single fully connected layer."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.linear(x)


def train(model, x, y, learning_rate=0.01, n_iters=100):
    """Train ``model`` in place; return the loss of each epoch (before its update)."""
    loss = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

    history = []
    for _ in range(n_iters):
        y_pred = model(x)
        l = loss(y_pred, y)
        l.backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append(l.item())
    return history
