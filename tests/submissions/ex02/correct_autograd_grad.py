"""Correct: the gradient from torch.autograd.grad instead of loss.backward(): autograd all the same."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(float(w), requires_grad=True)
    history = []
    for _ in range(n_iters):
        loss = loss_fn(w)
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= learning_rate * grad
        history.append((w.item(), loss.item(), grad.item()))
    return history
