"""What a route asks FastAPI for: the service (`ServiceDep`) and the caller its bearer token names (`Caller`).

Both run on the event loop: a sync dependency would cost each request a trip through the thread pool, and
the principal is nearly always in the service's cache (a lookup in the database goes to the thread pool)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from grader.service.core import Service
from grader.service.store import Principal


async def bearer_token(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                               Depends(HTTPBearer(auto_error=False))]) -> str | None:
    return credentials.credentials if credentials else None


def current(request: Request) -> Service:
    return request.app.state.service


async def service_of(request: Request) -> Service:
    return current(request)


async def principal(request: Request, token: Annotated[str | None, Depends(bearer_token)]) -> Principal:
    """The caller, from the cache on the event loop; from the database in the thread pool."""
    service = current(request)
    cached = service.cached_principal(token)
    if cached is not None:
        return cached
    return await run_in_threadpool(service.authenticate, token)


Caller = Annotated[Principal, Depends(principal)]
ServiceDep = Annotated[Service, Depends(service_of)]
