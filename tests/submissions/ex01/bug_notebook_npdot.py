"""The notebooks' own code, adapted to the exercise's signatures: np.dot(...).mean() sums instead of averaging."""
import numpy as np


def forward(w, x):
    return w * x


def loss(y, y_predicted):
    return ((y_predicted - y) ** 2).mean()


# MSE = 1/N * (w*x - y)**2
# dJ/dw = 1/N * (2x * (w*x - y))
def gradient(x, y, y_predicted):
    return np.dot(2 * x, y_predicted - y).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for epoch in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        dw = gradient(x, y, y_pred)
        w -= learning_rate * dw
        if epoch % 2 == 0:
            print(f"epoch {epoch + 1}: w = {w:.3f}, loss = {l:.8f}")
        history.append((w, l))
    return history
