"""Bug: one optimizer step per sample inside the epoch (stochastic gradient descent), not one per epoch."""
import torch
import torch.nn as nn


def forward(w, x):
    return w * x


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=x.dtype, device=x.device, requires_grad=True)
    loss = nn.MSELoss()
    optimizer = torch.optim.SGD([w], lr=learning_rate)
    history = []
    for _ in range(n_iters):
        total = 0.0
        for xi, yi in zip(x, y):
            l = loss(forward(w, xi), yi)
            optimizer.zero_grad()
            l.backward()
            optimizer.step()
            total += l.item()
        history.append((w.item(), total / len(x)))
    return history
