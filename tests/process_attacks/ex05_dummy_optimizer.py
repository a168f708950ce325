"""Attack (ex05): the model trained by hand, and step() on a dummy optimizer that holds none of its parameters.
Expected: the training checks pass, the optimizer check earns nothing."""
import torch
from torch import nn


class LinearRegression(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.linear(x)


def train(model, x, y, learning_rate=0.01, n_iters=100):
    loss = nn.MSELoss()
    dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=learning_rate)
    history = []
    for _ in range(n_iters):
        l = loss(model(x), y)
        l.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= learning_rate * p.grad
                p.grad.zero_()
        dummy.step()
        history.append(l.item())
    return history
