"""Correct: float64, w.data updates, `w.grad = None`."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    history = []
    for _ in range(n_iters):
        w.grad = None
        loss = loss_fn(w)
        loss.backward()
        grad = float(w.grad)
        w.data = w.data - learning_rate * w.grad
        history.append((float(w), float(loss), grad))
    return history
