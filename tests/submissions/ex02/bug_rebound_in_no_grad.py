"""Bug: `w = w - lr * w.grad` under no_grad makes a new w that does not require grad; zero_() then fails."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        loss = loss_fn(w)
        loss.backward()
        grad = w.grad.item()
        with torch.no_grad():
            w = w - learning_rate * w.grad
        w.grad.zero_()
        history.append((w.item(), loss.item(), grad))
    return history
