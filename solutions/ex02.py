"""Reference solution for ex02: autograd on one weight.

Minimise an arbitrary scalar ``loss_fn(w)`` by gradient descent, with the
gradient coming from ``loss.backward()``.
"""

import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    """Gradient descent on a single weight; one ``(w, loss, grad)`` entry per epoch.

    loss and grad are computed at the start of the epoch, w is the value
    after that epoch's update.
    """
    if isinstance(w, torch.Tensor):
        w = w.detach().clone().requires_grad_(True)
    else:
        w = torch.tensor(w, dtype=torch.float32, requires_grad=True)

    history = []
    for _ in range(n_iters):
        loss = loss_fn(w)
        loss.backward()
        grad = w.grad.item()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), loss.item(), grad))
    return history
