"""Bug: the derivative of w**2 written by hand (2*w) instead of backward()."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    history = []
    for _ in range(n_iters):
        loss = loss_fn(torch.tensor(w))
        grad = 2 * w
        w = w - learning_rate * grad
        history.append((w, loss.item(), grad))
    return history
