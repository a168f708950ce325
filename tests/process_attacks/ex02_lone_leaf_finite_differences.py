"""Attack (ex02): the gradient by finite differences, and backward() on a lone leaf holding w's value.
Expected: the minimize trajectories pass (central differences in float64 are exact enough), the backward()
checks earn nothing."""
import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    w = float(w)
    history = []
    for _ in range(n_iters):
        h = 1e-4
        with torch.no_grad():
            at = lambda v: float(loss_fn(torch.tensor(v, dtype=torch.float64)))
            grad = (at(w + h) - at(w - h)) / (2 * h)
            loss = at(w)
        lone = torch.tensor(w, requires_grad=True)
        (lone * 1.0).backward()
        w = w - learning_rate * grad
        history.append((w, loss, grad))
    return history
