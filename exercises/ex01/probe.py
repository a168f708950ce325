"""ex01 probes (run in the sandboxed child): call forward, loss, gradient and train with float32 arrays."""

from grader.sandbox.probing import Context, reference_forward, reference_mse, reference_mse_gradient

REFERENCES = {"forward": reference_forward, "loss": reference_mse, "gradient": reference_mse_gradient}


def forward(ctx: Context, w, x):
    out = ctx.call("forward", w, ctx.array(x))
    return {"value": ctx.vector(out, (len(x),), "forward(w, x)")}


def loss(ctx: Context, y, y_pred):
    out = ctx.call("loss", ctx.array(y), ctx.array(y_pred))
    return {"value": ctx.number(out, "loss(y, y_pred)")}


def gradient(ctx: Context, x, y, y_pred):
    out = ctx.call("gradient", ctx.array(x), ctx.array(y), ctx.array(y_pred))
    return {"value": ctx.number(out, "gradient(x, y, y_pred)")}


def train(ctx: Context, x, y, w, learning_rate, n_iters):
    # The reference forward, loss and gradient stand in for the student's: one bug costs its own points only.
    return ctx.train("train", ctx.array(x), ctx.array(y), w=w, learning_rate=learning_rate, n_iters=n_iters,
                     columns=("w", "loss"), substitutes=REFERENCES)


def train_own(ctx: Context, x, y, w, learning_rate, n_iters):
    # End to end with the student's own helpers, so a gradient bug also shows in the trajectory it causes.
    return ctx.train("train", ctx.array(x), ctx.array(y), w=w, learning_rate=learning_rate, n_iters=n_iters,
                     columns=("w", "loss"))
