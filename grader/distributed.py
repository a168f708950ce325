"""`dask worker ADDRESS --preload grader.distributed`: the cluster side of grader/execution/cluster.py.

A public entry point (docs/operator/dask.md), kept under its name; the code lives in the execution layer.
"""

from grader.execution.cluster import dask_setup

__all__ = ["dask_setup"]
