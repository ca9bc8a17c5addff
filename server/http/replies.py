"""What every API handler reads and answers: a JSON body, bounded and
checked against its schema, and a JSON reply that is never sniffed or
cached."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.core.errors import InvalidMessage, MessageTooLarge

M = TypeVar("M", bound=BaseModel)

#: every JSON answer of the API: never sniffed, never cached
JSON_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=JSON_HEADERS)


async def read_json(request: web.Request, limit: int, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object, at most ``limit`` bytes (read no further);
    an empty body is ``{}`` unless ``required``."""
    if request.content_length is not None and request.content_length > limit:
        raise MessageTooLarge(f"request body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise MessageTooLarge(f"request body exceeds {limit} bytes")
    if not body.strip():
        if required:
            raise InvalidMessage("a JSON object body is required")
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidMessage("body is not valid JSON (or nested too deeply)") from None
    if not isinstance(data, dict):
        raise InvalidMessage("body must be a JSON object")
    return data


async def read_model(request: web.Request, model: type[M], limit: int) -> M:
    """The body, validated by ``model``; the first problem is named."""
    data = await read_json(request, limit)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidMessage(f"{where}: {first['msg']}") from None
