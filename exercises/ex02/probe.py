"""ex02 probes (run in the sandboxed child): build a loss function from its formula and call minimize."""

from grader.sandbox.probing import Context


def loss_function(formula: str):
    """`formula` is an expression in `w` from the spec (trusted data): only `torch` is in scope."""
    import torch

    return eval(f"lambda w: {formula}", {"__builtins__": {}, "torch": torch})


def minimize(ctx: Context, loss, w, learning_rate, n_iters):
    return ctx.train("minimize", loss_function(loss), w=w, learning_rate=learning_rate, n_iters=n_iters,
                     columns=("w", "loss", "grad"), watch=True, parameter="w")
