"""Bug: torch.optim.SGD with momentum=0.9, as many tutorials write it: another update rule than plain SGD."""
import torch
import torch.nn as nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    optimizer = torch.optim.SGD([w], lr=learning_rate, momentum=0.9)
    history = []
    for _ in range(n_iters):
        l = loss(forward(w, x), y)
        optimizer.zero_grad()
        l.backward()
        optimizer.step()
        history.append((w.item(), l.item()))
    return history
