"""Correct: momentum=0 and dampening=0 spelled out: plain SGD after all (no evidence of another rule)."""
import torch
import torch.nn as nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    optimizer = torch.optim.SGD([w], lr=learning_rate, momentum=0.0, dampening=0.0, nesterov=False)
    history = []
    for _ in range(n_iters):
        l = loss(forward(w, x), y)
        optimizer.zero_grad()
        l.backward()
        optimizer.step()
        history.append((w.item(), l.item()))
    return history
