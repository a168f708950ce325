"""Correct: the loss summed over mini-batches of 2, each divided by N, one step per epoch: the full-batch
gradient, reached by another route (no per-sample updates)."""
import torch
import torch.nn as nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD([w], lr=learning_rate)
    history = []
    for _ in range(n_iters):
        optimizer.zero_grad()
        total = 0.0
        for start in range(0, len(x), 2):
            l = loss(forward(w, x[start:start + 2]), y[start:start + 2]) / len(x)
            l.backward()
            total += l.item()
        optimizer.step()
        history.append((w.item(), total))
    return history
