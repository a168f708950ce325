"""Bug: appends w before the update (where the tutorial prints it): w is one epoch behind, the rest is right."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        loss = loss_fn(w)
        loss.backward()
        history.append((w.item(), loss.item(), w.grad.item()))
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
    return history
