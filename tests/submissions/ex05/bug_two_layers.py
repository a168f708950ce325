"""Bug (architecture only): two stacked nn.Linear layers. The train function is right, so only the model's
checks lose points: the train checks run the student's train on the grader's model."""
import torch
import torch.nn as nn


class LinearRegression(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.hidden = nn.Linear(input_dim, 8)
        self.out = nn.Linear(8, output_dim)

    def forward(self, x):
        return self.out(self.hidden(x))


def train(model, x, y, learning_rate=0.01, n_iters=100):
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    history = []
    for _ in range(n_iters):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history
