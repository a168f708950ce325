"""Bug: the update subtracts learning_rate × the loss instead of × its gradient (w.grad)."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, requires_grad=True)
    history = []
    for _ in range(n_iters):
        loss = loss_fn(w)
        loss.backward()
        with torch.no_grad():
            w -= learning_rate * loss
        history.append((w.item(), loss.item(), w.grad.item()))
        w.grad.zero_()
    return history
