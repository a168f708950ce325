"""ex03 probes (run in the sandboxed child): call forward, loss and train with tensors on the device."""

from grader.sandbox.probing import Context


def reference_forward(w, x):
    return w * x


def reference_loss(y, y_pred):
    return ((y_pred - y) ** 2).mean()


def forward(ctx: Context, w, x):
    out = ctx.call("forward", ctx.tensor(w), ctx.tensor(x))
    return {"value": ctx.vector(out, (len(x),), "forward(w, x)")}


def loss(ctx: Context, y, y_pred):
    out = ctx.call("loss", ctx.tensor(y), ctx.tensor(y_pred))
    return {"value": ctx.number(out, "loss(y, y_pred)")}


def train(ctx: Context, x, y, w, learning_rate, n_iters):
    # The reference forward and loss stand in for the student's, so a bug there costs its own points only.
    with ctx.substitute(forward=reference_forward, loss=reference_loss), ctx.watch() as events:
        history = ctx.call("train", ctx.tensor(x), ctx.tensor(y), w=w, learning_rate=learning_rate,
                           n_iters=n_iters)
    fields = ctx.history(history, n_iters, ("w", "loss"), "train(...)")
    return {**fields, **events.as_fields()}
