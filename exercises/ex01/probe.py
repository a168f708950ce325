"""ex01 probes (run in the sandboxed child): call forward, loss, gradient and train with float32 arrays."""

from grader.sandbox.probing import (Context, in_callers_order, reference_forward, reference_mse,
                                    reference_mse_gradient)


def references(x, y) -> dict:
    """The reference helpers for one run. The gradient follows the order in which the student's train passes
    x, y and y_pred (`gradient(x, y_pred, y)` is recognised by value), so the substitute never flips a sign
    the student's own code does not flip; MSE and w * x are symmetric already."""
    gradient, forward = in_callers_order(reference_mse_gradient, x, y, "gradient", reference_forward)
    return {"forward": forward, "loss": reference_mse, "gradient": gradient}


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
    x, y = ctx.array(x), ctx.array(y)
    return ctx.train("train", x, y, w=w, learning_rate=learning_rate, n_iters=n_iters,
                     columns=("w", "loss"), substitutes=references(x, y))


def train_own(ctx: Context, x, y, w, learning_rate, n_iters):
    # End to end with the student's own helpers, so a gradient bug also shows in the trajectory it causes.
    return ctx.train("train", ctx.array(x), ctx.array(y), w=w, learning_rate=learning_rate, n_iters=n_iters,
                     columns=("w", "loss"))
