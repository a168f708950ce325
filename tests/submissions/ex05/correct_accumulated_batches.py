"""Correct: the epoch's gradient is accumulated over mini-batches of two samples (each batch's loss weighted by
its share of the samples), then one optimizer step per epoch: the same full-batch gradient descent."""
import torch
import torch.nn as nn


class LinearRegression(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.linear(x)


def train(model, x, y, learning_rate=0.01, n_iters=100):
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    losses = []
    for _ in range(n_iters):
        optimizer.zero_grad()
        total = 0.0
        for start in range(0, len(x), 2):
            part = criterion(model(x[start:start + 2]), y[start:start + 2]) * len(x[start:start + 2]) / len(x)
            part.backward()
            total += part.item()
        optimizer.step()
        losses.append(total)
    return losses
