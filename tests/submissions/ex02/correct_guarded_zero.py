"""Correct: zeroes the gradient at the top of each epoch, guarded by `if w.grad is not None` (None at first)."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(float(w), requires_grad=True)
    history = []
    for _ in range(n_iters):
        if w.grad is not None:
            w.grad.zero_()
        loss = loss_fn(w)
        loss.backward()
        with torch.no_grad():
            w.sub_(learning_rate * w.grad)
        history.append((w.item(), loss.item(), w.grad.item()))
    return history
