"""Bug: the prediction is an (n, 1) column against (n,) targets; MSELoss broadcasts (and warns)."""
import torch
import torch.nn as nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    optimizer = torch.optim.SGD([w], lr=learning_rate)
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x.view(-1, 1))
        l = loss(y_pred, y)
        l.backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append((w.item(), l.item()))
    return history
