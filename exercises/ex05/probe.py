"""ex05 probes (run in the sandboxed child): build the student's model seeded on the CPU, then use it."""

from grader.sandbox.probing import Context, ProbeFailure


def build_model(ctx: Context, input_dim: int, output_dim: int, seed: int):
    """The grader builds the model: seeded on the CPU (the same weights everywhere), then moved."""
    import torch

    torch.manual_seed(seed)
    model = ctx.call("LinearRegression", input_dim, output_dim)
    if not isinstance(model, torch.nn.Module):
        raise ProbeFailure("type", "LinearRegression(...) should build an nn.Module; did you subclass nn.Module?")
    return model.to(ctx.device)


def reference_model(ctx: Context, input_dim: int, output_dim: int, seed: int):
    """The grader's own LinearRegression, seeded exactly as `build_model` seeds the student's: the train checks
    use it, so a model with another architecture costs the model's checks only, never the loop's."""
    import torch

    class LinearRegression(torch.nn.Module):
        def __init__(self, input_dim: int, output_dim: int):
            super().__init__()
            self.linear = torch.nn.Linear(input_dim, output_dim)

        def forward(self, x):
            return self.linear(x)

    torch.manual_seed(seed)
    return LinearRegression(input_dim, output_dim).to(ctx.device)


def linear_layer(model):
    """The model's single nn.Linear (the exercise asks for exactly one)."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if len(layers) != 1:
        raise ProbeFailure("shape", f"LinearRegression should hold exactly one nn.Linear; it holds {len(layers)}.")
    return layers[0]


def structure(ctx: Context, input_dim, output_dim):
    model = build_model(ctx, input_dim, output_dim, seed=0)
    layer = linear_layer(model)
    return {"in_features": layer.in_features, "out_features": layer.out_features,
            "parameters": sum(p.numel() for p in model.parameters())}


def model_forward(ctx: Context, input_dim, output_dim, seed, x):
    model = build_model(ctx, input_dim, output_dim, seed)
    out = model(ctx.tensor(x))
    return {"value": ctx.vector(out, (len(x), output_dim), "model(x)")}


def train(ctx: Context, input_dim, output_dim, seed, x, y, learning_rate, n_iters):
    # The student's train on the grader's model: the loop is graded on its own.
    model = reference_model(ctx, input_dim, output_dim, seed)
    return _trained(ctx, model, input_dim, output_dim, x, y, learning_rate, n_iters, strict=True)


def trained_parameters(ctx: Context, input_dim, output_dim, seed, x, y, learning_rate, n_iters):
    # The same run as `train`, repeated (it is deterministic): the layer after training.
    return train(ctx, input_dim, output_dim, seed, x, y, learning_rate, n_iters)


def train_own(ctx: Context, input_dim, output_dim, seed, x, y, learning_rate, n_iters):
    # End to end with the student's own model: the losses count; the layer is compared where there is one.
    model = build_model(ctx, input_dim, output_dim, seed)
    return _trained(ctx, model, input_dim, output_dim, x, y, learning_rate, n_iters, strict=False)


def _trained(ctx: Context, model, input_dim, output_dim, x, y, learning_rate, n_iters, strict: bool) -> dict:
    start = initial_parameters(ctx, model, input_dim, output_dim)
    fields = ctx.train("train", model, ctx.tensor(x), ctx.tensor(y), learning_rate=learning_rate,
                       n_iters=n_iters, columns=("loss",), watch=True, parameters=list(model.parameters()))
    fields = {**fields, **start}
    try:
        layer = linear_layer(model)
        if layer.bias is None:
            raise ProbeFailure("shape", "the nn.Linear has no bias; create it with the default bias=True.")
    except ProbeFailure:
        if strict:
            raise
        return fields  # no weights to compare; the structure check says why, the losses still count
    return {**fields, "weight": ctx.vector(layer.weight, (output_dim, input_dim), "the trained layer's weight"),
            "bias": ctx.vector(layer.bias, (output_dim,), "the trained layer's bias")}


def initial_parameters(ctx: Context, model, input_dim, output_dim) -> dict:
    """The layer's weight and bias before training: diagnose.py replays the cataloged mistakes from them."""
    try:
        layer = linear_layer(model)
        if layer.bias is None:
            return {}
        return {"initial_weight": ctx.vector(layer.weight, (output_dim, input_dim), "the layer's weight"),
                "initial_bias": ctx.vector(layer.bias, (output_dim,), "the layer's bias")}
    except ProbeFailure:
        return {}
