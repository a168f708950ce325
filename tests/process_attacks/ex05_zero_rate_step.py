"""Attack (ex05): the model updated by hand beside SGD(model.parameters(), lr=0.0).step(): an optimizer that
holds every parameter and moves none. Expected: the training checks pass, the optimizer check earns nothing."""
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
    idle = torch.optim.SGD(model.parameters(), lr=0.0)
    history = []
    for _ in range(n_iters):
        l = loss(model(x), y)
        idle.zero_grad()
        l.backward()
        idle.step()
        with torch.no_grad():
            for p in model.parameters():
                p -= learning_rate * p.grad
        history.append(l.item())
    return history
