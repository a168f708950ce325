"""Correct: updates through w.data and clears the gradient with `w.grad = None`."""
import torch


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return torch.mean((y - y_pred) ** 2)  # arguments of the square swapped: same MSE


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    w = torch.tensor(w, dtype=torch.float32, device=x.device, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        l.backward()
        w.data = w.data - learning_rate * w.grad
        w.grad = None
        history.append((w.item(), l.item()))
    return history
