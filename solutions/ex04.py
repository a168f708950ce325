"""Reference solution for ex04: loss and optimizer from PyTorch.

The hand-written MSE and update of ex03 are replaced by ``nn.MSELoss`` and
``torch.optim.SGD``.
"""

import torch
from torch import nn


def forward(w, x):
    """Prediction of the model f(x) = w * x."""
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    """Gradient descent on w with nn.MSELoss and torch.optim.SGD; one ``(w, loss)`` entry per epoch."""
    if isinstance(w, torch.Tensor):
        w = w.detach().clone().to(device=x.device, dtype=x.dtype)
    else:
        w = torch.tensor(w, dtype=x.dtype, device=x.device)
    w.requires_grad_(True)

    loss = nn.MSELoss()
    optimizer = torch.optim.SGD([w], lr=learning_rate)

    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y_pred, y)
        l.backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append((w.item(), l.item()))
    return history
