"""Bug: one optimizer step per mini-batch of two samples inside the epoch, not one per epoch; the epoch's loss
is the mean of its batches' losses."""
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
        seen = []
        for start in range(0, len(x), 2):
            optimizer.zero_grad()
            loss = criterion(model(x[start:start + 2]), y[start:start + 2])
            loss.backward()
            optimizer.step()
            seen.append(loss.item())
        losses.append(sum(seen) / len(seen))
    return losses
