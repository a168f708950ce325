"""Bug: appends `w.data` (a view of the same memory as w): every entry shows the final w."""
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
        l = loss(forward(w, x), y)
        l.backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append((w.data, l.item()))
    return history
