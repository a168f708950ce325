"""Attack: a float subclass whose __eq__ always says yes. Expected: only its plain value crosses the channel."""


class Yes(float):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __lt__(self, other):
        return False

    def __gt__(self, other):
        return False

    __hash__ = float.__hash__

    def __abs__(self):
        return Yes(0.0)

    def __sub__(self, other):
        return Yes(0.0)

    __rsub__ = __sub__


def forward(w, x):
    return w * x


def loss(y, y_pred):
    return Yes(123.0)


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    return [(Yes(-1.0), Yes(-1.0)) for _ in range(n_iters)]
