"""Correct: nn.MSELoss(reduction='sum') divided by the number of samples is the mean, exactly the MSE."""
import torch
import torch.nn as nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    summed = nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD([w], lr=learning_rate)
    history = []
    for _ in range(n_iters):
        l = summed(forward(w, x), y) / len(x)
        l.backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append((w.item(), l.item()))
    return history
