"""The mutation operators: each one a mistake students make, applied to a reference solution by AST.

An operator finds the places in the solution where its mistake can be made (`find` returns one `Site` per
place, on the tree it was given) and a site's `apply` rewrites that tree in place; `mutants()` parses the
solution afresh for every site, so each mutant carries exactly one mistake. The catalogue is written from
the corpus of real mistakes (tests/submissions/) and the diagnosis table: each operator names the code that
should name its mistake (`code`), whether or not that code exists yet; `grader.authoring.mutants` counts a
mutant as nameable only when the registry (grader/codes.py) holds its code at run time.

An operator that finds nothing in a solution (no optimizer to swap, no module to initialise) makes no
mutant: "where the solution's code allows it".
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Context:
    """What an operator may know about the exercise besides the solution's code."""

    framework: str  # "numpy" | "torch"
    data_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # function -> the notebook's list args


@dataclass(frozen=True)
class Site:
    line: int
    apply: Callable[[], None]
    detail: str = ""  # what exactly changes here, for the description


@dataclass(frozen=True)
class Operator:
    name: str
    description: str
    code: str  # the diagnosis code that names this mistake (it may not be in the registry yet)
    find: Callable[[ast.Module, Context], list[Site]]


@dataclass(frozen=True)
class Mutant:
    operator: str
    description: str
    line: int
    code: str
    source: str


# ---- small helpers over the tree

def _bodies(tree: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every statement list in the tree (bodies, else-branches, ...), in source order."""
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                yield body


def _method(node: ast.AST) -> str | None:
    """`a.b.zero_()` → "zero_"; `f(...)` → "f"; anything else → None."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            return node.func.attr
        if isinstance(node.func, ast.Name):
            return node.func.id
    return None


def _call_stmt(stmt: ast.stmt, *names: str) -> bool:
    return isinstance(stmt, ast.Expr) and _method(stmt.value) in names


def _remove(body: list[ast.stmt], stmt: ast.stmt) -> None:
    body.remove(stmt)
    if not body:
        body.append(ast.Pass())


def _functions(tree: ast.AST) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


def _epoch_loops(tree: ast.AST) -> list[tuple[ast.FunctionDef, ast.For]]:
    """(function, loop) for each `for ... in range(...)` loop that appends to a history: an epoch loop."""
    found = []
    for function in _functions(tree):
        for node in ast.walk(function):
            if isinstance(node, ast.For) and _method(node.iter) == "range" \
                    and any(_call_stmt(s, "append") for s in node.body):
                found.append((function, node))
    return found


def _is_no_grad(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.With) and any(_method(item.context_expr) == "no_grad" for item in stmt.items)


def _optimizer_calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _method(n) == "SGD"]


def _parameters(function: ast.FunctionDef) -> set[str]:
    """The names a training function updates: `w -= ...`, `w = w - ...`, `SGD([w], ...)`."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.BinOp) and _names(node.value.left) == {node.targets[0].id}:
            names.add(node.targets[0].id)
    for call in _optimizer_calls(function):
        if call.args and isinstance(call.args[0], (ast.List, ast.Tuple)):
            names |= {e.id for e in call.args[0].elts if isinstance(e, ast.Name)}
    return names


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _update_index(body: list[ast.stmt], parameters: set[str]) -> int | None:
    """Where the epoch's update is: the no_grad block, `optimizer.step()`, or the assignment to a parameter."""
    for index, stmt in enumerate(body):
        if _is_no_grad(stmt) or _call_stmt(stmt, "step"):
            return index
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] \
            if isinstance(stmt, ast.AugAssign) else []
        if any(isinstance(t, ast.Name) and t.id in parameters for t in targets):
            return index
    return None


def _replace_names(node: ast.AST, mapping: dict[str, Callable[[], ast.expr]]) -> ast.AST:
    class Rename(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.AST:
            if isinstance(name.ctx, ast.Load) and name.id in mapping:
                return ast.copy_location(mapping[name.id](), name)
            return name

    return Rename().visit(node)


def _expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


# ---- the operators

def _drop_zero_grad(tree: ast.Module, ctx: Context) -> list[Site]:
    return [Site(stmt.lineno, lambda b=body, s=stmt: _remove(b, s), ast.unparse(stmt))
            for body in _bodies(tree) for stmt in body if _call_stmt(stmt, "zero_", "zero_grad")]


def _step_before_backward(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for body in _bodies(tree):
        backward = next((s for s in body if _call_stmt(s, "backward")), None)
        if backward is None:
            continue
        for stmt in body[body.index(backward) + 1:]:
            if _call_stmt(stmt, "step"):
                def move(b: list[ast.stmt] = body, s: ast.stmt = stmt, before: ast.stmt = backward) -> None:
                    b.remove(s)
                    b.insert(b.index(before), s)
                sites.append(Site(stmt.lineno, move))
    return sites


def _sum_for_mean(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for node in ast.walk(tree):
        if _method(node) == "mean":
            def to_sum(n: ast.Call = node) -> None:
                if isinstance(n.func, ast.Attribute):
                    n.func.attr = "sum"
                else:
                    n.func.id = "sum"  # type: ignore[union-attr]
            sites.append(Site(node.lineno, to_sum, "mean → sum"))
        elif _method(node) == "MSELoss" and not any(k.arg == "reduction" for k in node.keywords):
            sites.append(Site(node.lineno, lambda n=node: n.keywords.append(
                ast.keyword("reduction", ast.Constant("sum"))), "MSELoss(reduction='sum')"))
    return sites


def _missing_factor_2(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for parent in ast.walk(tree):
        for name, child in ast.iter_fields(parent):
            if isinstance(child, ast.BinOp) and isinstance(child.op, ast.Mult):
                for keep, drop in ((child.right, child.left), (child.left, child.right)):
                    if isinstance(drop, ast.Constant) and drop.value == 2:
                        sites.append(Site(child.lineno, lambda p=parent, f=name, k=keep: setattr(p, f, k)))
    return sites


def _flipped_sign(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for function, loop in _epoch_loops(tree):
        parameters = _parameters(function)
        for node in ast.walk(loop):
            if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Sub) \
                    and isinstance(node.target, ast.Name) and node.target.id in parameters:
                sites.append(Site(node.lineno, lambda n=node: setattr(n, "op", ast.Add())))
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) \
                    and isinstance(node.value.op, ast.Sub) and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id in parameters:
                sites.append(Site(node.lineno, lambda n=node.value: setattr(n, "op", ast.Add())))
    for call in _optimizer_calls(tree):
        sites.append(Site(call.lineno, lambda c=call: c.keywords.append(
            ast.keyword("maximize", ast.Constant(True))), "SGD(maximize=True)"))
    return sites


def _loss_after_update(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for function, loop in _epoch_loops(tree):
        body = loop.body
        update = _update_index(body, _parameters(function))
        if update is None:
            continue
        backward = next((i for i, s in enumerate(body) if _call_stmt(s, "backward")), update)
        before = [s for s in body[:min(update, backward)] if isinstance(s, ast.Assign)]
        append = next(s for s in body if _call_stmt(s, "append"))
        if not before or body.index(append) < update:
            continue

        def recompute(b: list[ast.stmt] = body, again: list[ast.stmt] = before, a: ast.stmt = append) -> None:
            at = b.index(a)
            b[at:at] = [copy.deepcopy(s) for s in again]
        sites.append(Site(append.lineno, recompute))
    return sites


def _w_before_update(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for function, loop in _epoch_loops(tree):
        parameters = _parameters(function)
        body = loop.body
        update = _update_index(body, parameters)
        append = next(s for s in body if _call_stmt(s, "append"))
        if update is None or body.index(append) < update or not (_names(append) & parameters):
            continue

        def move(b: list[ast.stmt] = body, a: ast.stmt = append, u: ast.stmt = body[update]) -> None:
            b.remove(a)
            b.insert(b.index(u), a)
        sites.append(Site(append.lineno, move))
    return sites


def _live_tensor_appended(tree: ast.Module, ctx: Context) -> list[Site]:
    if ctx.framework != "torch":
        return []
    sites = []
    for function, loop in _epoch_loops(tree):
        parameters = _parameters(function)
        for stmt in loop.body:
            if not _call_stmt(stmt, "append"):
                continue
            for parent in ast.walk(stmt):
                for name, child in ast.iter_fields(parent):
                    children = child if isinstance(child, list) else [child]
                    for index, item in enumerate(children):
                        if _method(item) == "item" and isinstance(item.func.value, ast.Name) \
                                and item.func.value.id in parameters:
                            def live(c: Any = child, i: int = index, p: ast.AST = parent, f: str = name,
                                     tensor: ast.expr = item.func.value) -> None:
                                if isinstance(c, list):
                                    c[i] = tensor
                                else:
                                    setattr(p, f, tensor)
                            sites.append(Site(stmt.lineno, live))
    return sites


def _rebound_parameter(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for function, loop in _epoch_loops(tree):
        parameters = _parameters(function)
        for body in _bodies(loop):
            for stmt in body:
                if not _is_no_grad(stmt):
                    continue
                updates = [s for s in stmt.body if isinstance(s, ast.AugAssign) and isinstance(s.target, ast.Name)
                           and s.target.id in parameters]
                if not updates:
                    continue

                def rebind(b: list[ast.stmt] = body, w: ast.With = stmt) -> None:
                    at = b.index(w)
                    statements = [
                        ast.Assign([ast.Name(s.target.id, ast.Store())],
                                   ast.BinOp(ast.Name(s.target.id, ast.Load()), s.op, s.value), lineno=s.lineno)
                        if isinstance(s, ast.AugAssign) and isinstance(s.target, ast.Name) else s
                        for s in w.body]
                    b[at:at + 1] = statements
                sites.append(Site(stmt.lineno, rebind))
    return sites


def _momentum(tree: ast.Module, ctx: Context) -> list[Site]:
    return [Site(c.lineno, lambda c=c: c.keywords.append(ast.keyword("momentum", ast.Constant(0.9))))
            for c in _optimizer_calls(tree) if not any(k.arg == "momentum" for k in c.keywords)]


def _adam(tree: ast.Module, ctx: Context) -> list[Site]:
    def swap(c: ast.Call) -> None:
        if isinstance(c.func, ast.Attribute):
            c.func.attr = "Adam"
        else:
            c.func = _expr("torch.optim.Adam")
    return [Site(c.lineno, lambda c=c: swap(c)) for c in _optimizer_calls(tree)]


def _per_sample_updates(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for function, loop in _epoch_loops(tree):
        arguments = {a.arg for a in function.args.args}
        if not {"x", "y"} <= arguments:
            continue
        inner = [s for s in loop.body if not _call_stmt(s, "append")]
        if not any(isinstance(s, (ast.Assign, ast.AugAssign, ast.With, ast.Expr)) for s in inner):
            continue

        def per_sample(lp: ast.For = loop) -> None:
            sliced = {name: (lambda n=name: _expr(f"{n}[_i:_i + 1]")) for name in ("x", "y")}
            work = [_replace_names(s, sliced) for s in lp.body if not _call_stmt(s, "append")]
            samples = ast.For(target=ast.Name("_i", ast.Store()), iter=_expr("range(len(x))"), body=work,
                              orelse=[], lineno=lp.lineno)
            lp.body = [samples] + [s for s in lp.body if _call_stmt(s, "append")]
        sites.append(Site(loop.lineno, per_sample))
    return sites


def _global_for_argument(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for function in _functions(tree):
        given = ctx.data_args.get(function.name, {})
        arguments = [a.arg for a in function.args.args if a.arg in given]
        if not arguments or function.col_offset != 0:
            continue

        def use_globals(f: ast.FunctionDef = function, names: list[str] = arguments,
                        given: dict[str, Any] = given) -> None:
            maker = "_np.array({}, dtype=_np.float32)" if ctx.framework == "numpy" else \
                "_torch.tensor({}, dtype=_torch.float32)"
            module = "import numpy as _np" if ctx.framework == "numpy" else "import torch as _torch"
            glob = {n: f"NOTEBOOK_{n.upper()}" for n in names}
            header = ast.parse(module + "\n" + "\n".join(
                f"{glob[n]} = {maker.format(given[n])}" for n in names)).body
            tree.body[tree.body.index(f):tree.body.index(f)] = header
            f.body = [_replace_names(s, {n: (lambda g=glob[n]: ast.Name(g, ast.Load())) for n in names})
                      for s in f.body]
        sites.append(Site(function.lineno, use_globals, f"{function.name}: {', '.join(arguments)}"))
    return sites


def _hard_coded(kinds: tuple[str, ...]) -> Callable[[ast.Module, Context], list[Site]]:
    def find(tree: ast.Module, ctx: Context) -> list[Site]:
        sites = []
        for function in _functions(tree):
            positional = function.args.args
            defaults = dict(zip([a.arg for a in positional[len(positional) - len(function.args.defaults):]],
                                function.args.defaults, strict=True))
            for name, default in defaults.items():
                if any(k in name for k in kinds) and isinstance(default, ast.Constant) \
                        and isinstance(default.value, (int, float)):
                    def hard_code(f: ast.FunctionDef = function, n: str = name, v: Any = default.value) -> None:
                        f.body = [_replace_names(s, {n: lambda: ast.Constant(v)}) for s in f.body]
                    sites.append(Site(function.lineno, hard_code, f"{function.name}: {name} = {default.value!r}"))
        return sites
    return find


def _shape_broadcast(tree: ast.Module, ctx: Context) -> list[Site]:
    sites = []
    for function, loop in _epoch_loops(tree):
        arguments = {a.arg for a in function.args.args}
        two_d = any(isinstance(v, list) and v and isinstance(v[0], list)
                    for v in ctx.data_args.get(function.name, {}).values())
        reshape = ".squeeze(-1)" if two_d else ".reshape(-1, 1)"
        predictions = {t.id for s in loop.body if isinstance(s, ast.Assign) for t in s.targets
                       if isinstance(t, ast.Name) and isinstance(s.value, ast.Call) and t.id not in arguments
                       and (_method(s.value) in ("forward", "model") or "pred" in t.id)}
        for node in ast.walk(loop):
            if isinstance(node, ast.Call) and _method(node) not in ("backward", "append", "item"):
                for index, arg in enumerate(node.args):
                    if isinstance(arg, ast.Name) and arg.id in predictions and _method(node) != "forward":
                        sites.append(Site(node.lineno, lambda c=node, i=index, a=arg, r=reshape: c.args.__setitem__(
                            i, _expr(f"{a.id}{r}")), f"{arg.id}{reshape}"))
                        break
    return sites[:1]


def _missing_super_init(tree: ast.Module, ctx: Context) -> list[Site]:
    def is_super_init(stmt: ast.stmt) -> bool:
        return _call_stmt(stmt, "__init__") and _method(stmt.value.func.value) == "super"  # type: ignore[attr-defined]
    return [Site(stmt.lineno, lambda b=body, s=stmt: _remove(b, s))
            for body in _bodies(tree) for stmt in body if is_super_init(stmt)]


OPERATORS: tuple[Operator, ...] = (
    Operator("drop-zero-grad", "the gradient is never zeroed", "grad-not-zeroed", _drop_zero_grad),
    Operator("step-before-backward", "`optimizer.step()` moved before `backward()`", "step-before-backward",
             _step_before_backward),
    Operator("sum-for-mean", "a sum where the mean belongs", "gradient-not-averaged", _sum_for_mean),
    Operator("missing-factor-2", "the gradient's factor 2 dropped", "gradient-missing-factor-2", _missing_factor_2),
    Operator("flipped-sign", "the update climbs the gradient", "gradient-sign", _flipped_sign),
    Operator("loss-after-update", "the loss recomputed after the update and recorded", "loss-after-update",
             _loss_after_update),
    Operator("w-before-update", "w recorded before the epoch's update", "w-before-update", _w_before_update),
    Operator("live-tensor-appended", "the live parameter tensor appended instead of its value",
             "history-aliases-tensor", _live_tensor_appended),
    Operator("rebound-parameter", "the parameter rebound (`w = w - ...`) outside `torch.no_grad()`",
             "rebound-parameter", _rebound_parameter),
    Operator("momentum", "SGD with momentum 0.9", "wrong-optimizer", _momentum),
    Operator("adam", "Adam instead of SGD", "wrong-optimizer", _adam),
    Operator("per-sample-updates", "one update per sample instead of one per epoch", "per-sample-updates",
             _per_sample_updates),
    Operator("global-for-argument", "the notebook's data as globals instead of the arguments", "ignores-arguments",
             _global_for_argument),
    Operator("hard-coded-learning-rate", "the learning rate hard-coded to its default", "ignores-arguments",
             _hard_coded(("learning_rate", "lr"))),
    Operator("hard-coded-epochs", "the epoch count hard-coded to its default", "ignores-arguments",
             _hard_coded(("iter", "epoch"))),
    Operator("shape-broadcast", "the prediction's shape against the target's: `(n, 1)` vs `(n,)`", "shape-broadcast",
             _shape_broadcast),
    Operator("missing-super-init", "`super().__init__()` dropped from the module's `__init__`",
             "module-not-initialised", _missing_super_init),
)


def mutants(source: str, ctx: Context, operators: tuple[Operator, ...] = OPERATORS) -> list[Mutant]:
    """Every single-mistake mutant of `source` the operators find, in catalogue order."""
    found = []
    for operator in operators:
        count = len(operator.find(ast.parse(source), ctx))
        for index in range(count):
            tree = ast.parse(source)
            site = operator.find(tree, ctx)[index]
            site.apply()
            ast.fix_missing_locations(tree)
            mutated = ast.unparse(tree) + "\n"
            description = f"{operator.description} ({site.detail})" if site.detail else operator.description
            found.append(Mutant(operator.name, description, site.line, operator.code, mutated))
    return found
