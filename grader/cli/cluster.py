"""What `grade batch` and `grade serve` share about --scheduler: Dask's refusals in one line, its logs kept quiet."""

from __future__ import annotations

import click


def _dask_refusal() -> type[Exception]:
    """Check that the `dask` extra is installed; returns the error a cluster that refuses raises."""
    try:
        from grader.execution.cluster import ClusterRefused
    except ModuleNotFoundError as exc:
        raise click.UsageError(f"--scheduler needs the `dask` extra ({exc.name} is missing): "
                               "pip install 'dl-grader[dask]'") from None
    return ClusterRefused


def _quiet_dask_logs() -> None:
    """Dask's client logs a traceback when its scheduler goes away; the batch says it in one line instead."""
    import logging

    import distributed  # noqa: F401 - its logging configuration first, then ours over it

    for name in ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
