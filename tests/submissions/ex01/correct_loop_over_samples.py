"""Correct: loss and gradient accumulated sample by sample in a Python loop, then divided by N."""


def forward(w, x):
    return w * x


def loss(y, y_pred):
    total = 0.0
    for target, predicted in zip(y, y_pred):
        total += (predicted - target) ** 2
    return total / len(y)


def gradient(x, y, y_pred):
    total = 0.0
    for xi, target, predicted in zip(x, y, y_pred):
        total += 2 * xi * (predicted - target)
    return total / len(x)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=20):
    history = []
    for _ in range(n_iters):
        y_pred = forward(w, x)
        l = loss(y, y_pred)
        dw = gradient(x, y, y_pred)
        w = w - learning_rate * dw
        history.append((float(w), float(l)))
    return history
