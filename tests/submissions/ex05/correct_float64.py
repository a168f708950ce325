"""Correct: trains a float64 copy of the data with the model converted in place, set_to_none."""
import torch
import torch.nn as nn


class LinearRegression(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.linear(x)


def train(model, x, y, learning_rate=0.01, n_iters=100):
    model.double()
    x, y = x.double(), y.double()
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    losses = []
    for epoch in range(n_iters):
        prediction = model(x)
        loss = criterion(prediction, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
    model.float()
    return losses
