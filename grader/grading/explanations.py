"""What each diagnosis code tells the student: the explanations with their fix, and a Diagnosis made from one.

diagnose.py finds the mistake; this module words it. `make` is the one constructor of a Diagnosis from a code and
what is particular to the check; the stock text of each code is kept apart (Diagnosis.stock) for views that
say it once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from grader.course.source import Code
from grader.model.codes import DiagnosisCode


@dataclass(frozen=True)
class Diagnosis:
    code: str
    explanation: str
    cause_first: bool = False  # the explanation goes before the symptom (the error it led to)
    # The code's stock explanation, the tail of `explanation` after what is particular to this check ("" when
    # none): a view that says the stock text once prints only the particular part on later checks.
    stock: str = ""


EXPLANATIONS: dict[DiagnosisCode, str] = {
    DiagnosisCode.GRADIENT_NOT_AVERAGED: (
        "Your gradient is N times too large: it sums over the samples instead of averaging. "
        "`np.dot(2*x, y_pred - y)` already adds up the N products, so the `.mean()` after it averages a "
        "single number and changes nothing; use `np.mean(2*x*(y_pred - y))`. This is the notebooks' own bug, "
        "and it is why they concluded that autograd is 'not as exact': it is the other way round. Autograd "
        "computes the true MSE gradient and agrees with the corrected hand-written one to float precision."
    ),
    DiagnosisCode.GRADIENT_MISSING_FACTOR_2: (
        "Your gradient is half the true one. The derivative of (w*x - y)**2 is 2*x*(w*x - y): "
        "the factor 2 from the square is missing (or the loss was halved)."
    ),
    DiagnosisCode.GRADIENT_SIGN: (
        "The sign is flipped, so training climbs the loss instead of descending it. The gradient is that of "
        "(y_pred - y)**2, i.e. 2*x*(y_pred - y), not 2*x*(y - y_pred), and gradient descent subtracts it: "
        "w = w - learning_rate * gradient."
    ),
    DiagnosisCode.GRAD_NOT_ZEROED: (
        "Your gradients accumulate across epochs: PyTorch adds each backward() into .grad, so every step "
        "uses the sum of all gradients so far. Reset it every epoch with w.grad.zero_() "
        "(or optimizer.zero_grad())."
    ),
    DiagnosisCode.LOSS_AFTER_UPDATE: (
        "Your history is one epoch off: the loss is recorded after the update instead of before it. "
        "Record the loss computed from the prediction at the start of the epoch."
    ),
    DiagnosisCode.STEP_BEFORE_BACKWARD: (
        "optimizer.step() runs before loss.backward(), so each step uses the previous epoch's gradient "
        "(or none at all in the first epoch). The order is: zero_grad(), backward(), step()."
    ),
    DiagnosisCode.SHAPE_BROADCAST: (
        "Your prediction and target have different shapes, e.g. (n, 1) against (n,): subtracting them "
        "broadcasts to an (n, n) matrix and the MSE averages the wrong numbers. Make the shapes equal "
        "(e.g. `y_pred.view(-1)` or `y.view(-1, 1)`)."
    ),
    DiagnosisCode.IGNORES_ARGUMENTS: (
        "Your function gives the answer for other arguments than the ones passed in: it uses global "
        "variables (the notebook's X, Y, learning_rate) or constants instead of its parameters. "
        "Use only the arguments passed in."
    ),
    DiagnosisCode.NO_AUTOGRAD: (
        "The gradient was not computed by autograd. This exercise is about backpropagation: create w with "
        "requires_grad=True, call loss.backward(), and read w.grad."
    ),
    DiagnosisCode.NO_OPTIMIZER: (
        "The update bypasses torch.optim. Create torch.optim.SGD(..., lr=learning_rate) and let "
        "optimizer.step() update the parameters."
    ),
    DiagnosisCode.DEVICE_MISMATCH: (
        "Some of your tensors are on the CPU while the inputs are on the GPU. Create new tensors with "
        "device=x.device (or move them with .to(x.device)), and do not go through NumPy or .tolist()."
    ),
    DiagnosisCode.NOT_IMPLEMENTED: (
        "This function still raises NotImplementedError from the stub. Replace the `raise` with your code."
    ),
    DiagnosisCode.W_BEFORE_UPDATE: (
        "Your history is one epoch off: it records w before the epoch's update instead of after it (where "
        "the tutorials print it). Append w after the update line, so each entry pairs the epoch's loss with "
        "the w that epoch produced."
    ),
    DiagnosisCode.HISTORY_ALIASES_TENSOR: (
        "Your history holds the live parameter tensor (or a view of it: `w.data` and `w.detach()` share its "
        "memory, they are not copies), not its value at that epoch: every entry is the same memory, so after "
        "training each one shows the final value. Store a number instead: `w.item()` "
        "(or `w.detach().clone()`)."
    ),
    DiagnosisCode.REBOUND_PARAMETER: (
        "That line replaces w by a new tensor instead of updating it in place: the new w is the result of a "
        "computation, so it has no .grad of its own (or, made under torch.no_grad(), does not require grad), "
        "and the next backward() or w.grad fails. Update in place under torch.no_grad(): "
        "`w -= learning_rate * w.grad`, then `w.grad.zero_()`."
    ),
    DiagnosisCode.ARGUMENT_ORDER: (
        "The grader, like anyone reading the exercise, calls the function in the order of its signature, so "
        "your function reads y as y_pred and the other way round. Reorder the parameters to the exercise's "
        "signature (and your calls to match)."
    ),
    DiagnosisCode.MODULE_NOT_INITIALISED: (
        "An nn.Module subclass must call `super().__init__()` first thing in its `__init__`: until it does, "
        "the module has nowhere to register its layers, and PyTorch refuses `self.linear = nn.Linear(...)`. "
        "Add `super().__init__()` as the first line of `__init__`."
    ),
    DiagnosisCode.WRONG_OPTIMIZER: (
        "The exercise asks for plain gradient descent: each epoch, w = w - learning_rate * gradient, which is "
        "torch.optim.SGD with only lr set. Momentum, Nesterov, Adam, RMSprop and Adagrad reach a minimum too, but "
        "along another path, so the history differs from the first epochs on. Use "
        "torch.optim.SGD([w], lr=learning_rate) with no other option (or the plain update by hand where the "
        "exercise asks for one)."
    ),
    DiagnosisCode.PER_SAMPLE_UPDATES: (
        "That is stochastic (or mini-batch) gradient descent. The exercise asks for full-batch gradient "
        "descent: each epoch, one loss over all the samples, one gradient of it, and one update of w. Move the "
        "update out of the loop over samples (and compute the loss on the whole x and y at once)."
    ),
}


# ignores-arguments where the check builds the student's model (ex05): sizes, not the notebook's data.
IGNORES_ARGUMENTS_MODEL = (
    "Your model is built for other sizes than the ones passed in: create the layer from the arguments, "
    "`nn.Linear(input_dim, output_dim)`, not from constants or global variables."
)


# gradient-not-averaged in the student's own terms: their gradient uses np.dot, sums, or something else.
GRADIENT_NOT_AVERAGED_SUM = (
    "Your gradient is N times too large: it adds up the N products instead of averaging them. The MSE is a "
    "mean, so its gradient is too: divide the sum by N (len(x)), or write `np.mean(2*x*(y_pred - y))`."
)


GRADIENT_NOT_AVERAGED_NEUTRAL = (
    "Your gradient is N times too large: it sums over the samples instead of averaging. The MSE is a mean, so "
    "its gradient is the mean of 2*x*(y_pred - y) over the samples: `np.mean(2*x*(y_pred - y))`."
)


# gradient-not-averaged on the loss's own check: it speaks of the loss (the gradient's wording belongs to the
# gradient's and the training's checks).
GRADIENT_NOT_AVERAGED_LOSS = (
    "The MSE is a mean: average the squared errors (`.mean()`, `np.mean`, or nn.MSELoss() with its default "
    "reduction='mean'). A summed loss also makes every gradient of it N times too large."
)

# Where autograd computes the gradient, a gradient N times too large comes from a summed loss, not np.dot.
TORCH_EXPLANATIONS = {
    DiagnosisCode.GRADIENT_NOT_AVERAGED: (
        "Your gradient is N times too large: the loss sums over the samples instead of averaging them. The "
        "MSE is a mean (`.mean()`, or nn.MSELoss() with its default reduction='mean'), and autograd's gradient "
        "of it is exact."
    ),
}


def make(code: str, detail: str = "", framework: str = "numpy", source: Code | None = None) -> Diagnosis:
    explanations, torch_explanations = cast(dict[str, str], EXPLANATIONS), cast(dict[str, str], TORCH_EXPLANATIONS)
    text = torch_explanations.get(code, explanations[code]) if framework == "torch" else explanations[code]
    if code == DiagnosisCode.GRADIENT_NOT_AVERAGED:
        text, own = _summing_in_their_words(text, framework, source)
        detail = f"{detail} {own}".strip()
    return Diagnosis(code, (detail.strip() + " " if detail else "") + text, stock=text)


def _summing_in_their_words(text: str, framework: str, source: Code | None) -> tuple[str, str]:
    """The gradient-not-averaged explanation that fits the student's code, and the line of theirs it quotes.
    The np.dot wording (the notebooks' bug) only where their gradient uses np.dot."""
    if source is None:
        return text, ""
    if framework == "torch":
        line = (source.first_line_with("loss", "reduction='sum'", 'reduction="sum"', ".sum(", "sum(")
                or source.first_line_with("train", "reduction='sum'", 'reduction="sum"', ".sum("))
        return text, (f"It sums here: {line}." if line else "")
    body = source.function_text("gradient")
    if not body:
        return text, ""
    line = source.first_line_with("gradient", "dot(", "@", "sum(")
    quoted = f"Your gradient: {line}." if line else ""
    if "dot(" in body or "@" in body:
        return text, quoted
    if "sum(" in body:
        return GRADIENT_NOT_AVERAGED_SUM, quoted
    return GRADIENT_NOT_AVERAGED_NEUTRAL, quoted


def standard_explanations(code: str) -> tuple[str, ...]:
    """The stock explanation texts of a code (every wording), for views that say them once."""
    variants_by_code: dict[str, tuple[str, ...]] = {
        DiagnosisCode.GRADIENT_NOT_AVERAGED: (GRADIENT_NOT_AVERAGED_SUM, GRADIENT_NOT_AVERAGED_NEUTRAL,
                                              GRADIENT_NOT_AVERAGED_LOSS),
        DiagnosisCode.IGNORES_ARGUMENTS: (IGNORES_ARGUMENTS_MODEL,)}
    variants = variants_by_code.get(code, ())
    by_code = cast(dict[str, str], EXPLANATIONS), cast(dict[str, str], TORCH_EXPLANATIONS)
    return tuple(t for t in (by_code[0].get(code), by_code[1].get(code), *variants) if t)
