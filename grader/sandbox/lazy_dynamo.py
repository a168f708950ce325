"""A stand-in for `torch._dynamo` that loads the real one only when something needs more than eager mode.

torch.optim calls `torch._dynamo.graph_break()` in every `step()` and wraps its methods with
`torch._dynamo.disable` (through `torch._disable_dynamo`), so the first optimizer a submission builds imports
torch._dynamo: about as long again as `import torch` itself (ex04 and ex05 spent 0.8 s of a 2 s cold grade there).
Until the real module is loaded nothing can be compiling, so both calls mean nothing yet: `graph_break` does
nothing and `disable(fn)` is `fn`. Every other attribute (torch.compile, a submission that imports dynamo itself)
loads the real module, after which the stand-in forwards to it, graph_break and disable included.

Installed by the worker before it forks (trusted code, like the rest of the worker); a child inherits it.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

NAME = "torch._dynamo"


class LazyDynamo(types.ModuleType):
    """sys.modules["torch._dynamo"] until the real module is needed."""

    def __init__(self) -> None:
        super().__init__(NAME, __doc__)
        self._grader_real: types.ModuleType | None = None
        self._grader_loading = False

    def _grader_load(self) -> types.ModuleType:
        if self._grader_real is not None:
            return self._grader_real
        if self._grader_loading:  # the real package, half imported, reaching torch._dynamo.x: itself
            return sys.modules[NAME]
        import torch

        self._grader_loading = True
        del sys.modules[NAME]
        if torch.__dict__.get("_dynamo") is self:
            del torch._dynamo  # until the real one is bound, torch.__getattr__ finds it in sys.modules
        try:
            real = importlib.import_module(NAME)
        except BaseException:
            sys.modules[NAME] = torch._dynamo = self
            raise
        finally:
            self._grader_loading = False
        self._grader_real = torch._dynamo = real
        return real

    def __getattr__(self, name: str) -> Any:
        # __path__ is what the import system asks for before it imports a submodule (torch._dynamo.x).
        if name.startswith("__") and name.endswith("__") and name != "__path__":
            raise AttributeError(name)
        return getattr(self._grader_load(), name)

    def graph_break(self) -> None:
        if self._grader_real is not None:
            self._grader_real.graph_break()

    def disable(self, fn: Callable[..., Any] | None = None, recursive: bool = True, *,
                wrapping: bool = True, reason: str | None = None) -> Any:
        if self._grader_real is not None:
            return self._grader_real.disable(fn, recursive, wrapping=wrapping, reason=reason)
        if fn is None:
            return lambda inner: self.disable(inner, recursive, wrapping=wrapping, reason=reason)
        stand_in = self

        def call(*args: Any, **kwargs: Any) -> Any:
            # Loaded since (a submission compiled something): from now on, the real disable.
            if stand_in._grader_real is not None:
                return stand_in._grader_real.disable(fn, recursive, wrapping=False)(*args, **kwargs)
            return fn(*args, **kwargs)

        return call


def install() -> bool:
    """Put the stand-in in place, unless the real torch._dynamo is loaded already. Needs torch imported."""
    import torch

    if NAME in sys.modules:
        return isinstance(sys.modules[NAME], LazyDynamo)
    sys.modules[NAME] = torch._dynamo = LazyDynamo()
    return True
