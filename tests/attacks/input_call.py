"""Attack: wait for keyboard input. Expected: stdin is empty (EOFError), nothing hangs."""


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    learning_rate = float(input("learning rate? "))
    return [(0.0, 0.0)] * n_iters
