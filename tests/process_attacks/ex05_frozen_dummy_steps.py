"""Attack (ex05): a model that never trains, beside steps on an optimizer that does hold its parameters.
Expected: no process credit beside a history that shows no training."""
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
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    history = []
    for _ in range(n_iters):
        optimizer.zero_grad()
        optimizer.step()  # no gradient yet: nothing moves
        l = loss(model(x), y)
        l.backward()
        optimizer.zero_grad()
        history.append(l.item())
    return history
