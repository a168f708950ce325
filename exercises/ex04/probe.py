"""ex04 probes (run in the sandboxed child): call forward and train with tensors on the device."""

from grader.sandbox.probing import Context, reference_forward


def forward(ctx: Context, w, x):
    out = ctx.call("forward", ctx.tensor(w), ctx.tensor(x))
    return {"value": ctx.vector(out, (len(x),), "forward(w, x)")}


def train(ctx: Context, x, y, w, learning_rate, n_iters):
    # The reference forward stands in for the student's, so a bug there costs its own points only.
    return ctx.train("train", ctx.tensor(x), ctx.tensor(y), w=w, learning_rate=learning_rate, n_iters=n_iters,
                     columns=("w", "loss"), substitutes={"forward": reference_forward}, watch=True, parameter="w")


def train_own(ctx: Context, x, y, w, learning_rate, n_iters):
    # End to end with the student's own forward, so a bug there also shows in the trajectory it causes.
    return ctx.train("train", ctx.tensor(x), ctx.tensor(y), w=w, learning_rate=learning_rate, n_iters=n_iters,
                     columns=("w", "loss"))
