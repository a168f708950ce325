"""Bug: never zeroes w.grad: the gradients accumulate."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, requires_grad=True)
    history = []
    for _ in range(n_iters):
        loss = loss_fn(w)
        loss.backward()
        with torch.no_grad():
            w -= learning_rate * w.grad
        history.append((w.item(), loss.item(), w.grad.item()))
    return history
