"""Bug: records the loss at the updated w."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, requires_grad=True)
    history = []
    for _ in range(n_iters):
        loss_fn(w).backward()
        grad = w.grad.item()
        with torch.no_grad():
            w -= learning_rate * w.grad
            loss = loss_fn(w)
        history.append((w.item(), loss.item(), grad))
        w.grad.zero_()
    return history
