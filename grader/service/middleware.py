"""ASGI middleware in front of the application: a request body over the limit is answered 413 before it is read."""

from __future__ import annotations

import json
from typing import Any

from grader.service.config import MAX_FILE_BYTES
from grader.service.schemas import ApiError


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
