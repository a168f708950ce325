"""ex02 — Autograd on one weight.

Minimise an arbitrary scalar function of one weight, loss_fn(w), by gradient
descent, with the gradient computed by PyTorch's autograd (``loss.backward()``).

Implement ``minimize`` below (replace the ``raise NotImplementedError``).
The grader calls it with loss functions you have never seen, so do not
hard-code the derivative of w ** 2.
Check your work with ``grade ex02``; ask for a hint with ``grade hint ex02``.
"""

import torch


def minimize(loss_fn, w=10.0, learning_rate=0.1, n_iters=15):
    """Gradient descent on a single weight, with gradients from autograd.

    Each epoch: compute ``loss_fn(w)``, call ``backward()``, update w under
    ``torch.no_grad()`` with w -= learning_rate * w.grad, then zero w.grad.

    Args:
        loss_fn: function mapping a 0-d tensor (the weight) to a 0-d tensor (the loss).
        w: initial weight, a Python float (or a 0-d tensor).
        learning_rate: step size.
        n_iters: number of epochs.

    Returns:
        List of ``n_iters`` tuples ``(w, loss, grad)``: loss and grad computed at the
        start of the epoch (before the update), w after that epoch's update.
    """
    raise NotImplementedError("minimize: implement gradient descent with loss.backward()")
