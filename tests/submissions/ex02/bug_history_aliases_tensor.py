"""Bug: appends the tensor w itself: every entry is the same live tensor and shows the final w."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = torch.tensor(w, requires_grad=True)
    history = []
    for epoch in range(n_iters):
        loss = loss_fn(w)
        loss.backward()
        grad = w.grad.item()
        with torch.no_grad():
            w -= learning_rate * w.grad
        w.grad.zero_()
        history.append((w, loss.item(), grad))
    return history
