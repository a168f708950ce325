"""Correct: a fresh leaf each epoch with detach().requires_grad_(), tensors in the history."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(float(w), requires_grad=True)
    history = []
    for _ in range(n_iters):
        loss = loss_fn(w)
        loss.backward()
        grad = w.grad.clone()
        w = (w - learning_rate * w.grad).detach().requires_grad_()
        history.append((w.detach(), loss.detach(), grad))
    return history
