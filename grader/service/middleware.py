"""ASGI middleware in front of the application: a request body over the limit is answered 413 before it is read."""

from __future__ import annotations

import json
from typing import Any

from grader.service.config import (  # moved to config.py, still named here
    CALLBACK_URL as CALLBACK_URL,
    CALLBACK_URL_MAX as CALLBACK_URL_MAX,
    DEFAULT_PUBLIC_URL as DEFAULT_PUBLIC_URL,
    IDEMPOTENCY_KEY as IDEMPOTENCY_KEY,
    MAX_BODY_BYTES as MAX_BODY_BYTES,
    MAX_FILE_BYTES as MAX_FILE_BYTES,
    PRINCIPAL_CACHE_S as PRINCIPAL_CACHE_S,
    PUBLIC_URL as PUBLIC_URL,
    STUDENT_ID as STUDENT_ID,
    Config as Config,
    ConfigurationError as ConfigurationError,
    add_token as add_token,
    list_tokens as list_tokens,
    open_store as open_store,
    public_url as public_url,
    revoke_token as revoke_token,
)
from grader.service.schemas import (  # moved to schemas.py, still named here
    ApiError as ApiError,
    Created as Created,
    Health as Health,
    QueueState as QueueState,
    Regraded as Regraded,
    RegradeRequest as RegradeRequest,
    SubmissionState as SubmissionState,
    errors as errors,
    iso as iso,
    state as state,
    submission_fields as submission_fields,
)


class BodyLimit:
    """Answer 413 before reading a body larger than `limit` (by its Content-Length, or as it streams in)."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or {}).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._too_large(send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, "the request is larger than 1 MiB.")
            return message

        try:
            await self.app(scope, limited, send)
        except ApiError:
            await self._too_large(send)

    async def _too_large(self, send: Any) -> None:
        body = json.dumps({"error": f"the file is larger than {MAX_FILE_BYTES // 1024} KiB; submit only your "
                                    "source code."}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
