"""Input hygiene: values JSON allows (or Python's parser accepts) that no field of kgforge may hold.

* ``NaN``, ``Infinity``, ``-Infinity`` and numbers too large for a float (``1e999``): Python's JSON
  parser accepts them, pydantic passes non-finite floats where no bound rejects them, and an error
  that echoes them cannot be serialised (a 500 instead of a 422);
* lone surrogates (``"\\ud800"``): valid JSON escapes, but not Unicode; they cannot be encoded as
  UTF-8 (not stored, not written to the graph, not echoed back);
* NUL characters (``"\\u0000"``) in any string, names included: no name or text needs one, and
  they truncate strings in C libraries and logs;

all get a 422 in FastAPI's error shape naming the field (``["body", "entities", 0, "name"]``; the
query parameter's name for NUL characters in a query string). :class:`InputHygiene` checks JSON
bodies before routing; :func:`json_safe` makes any validation error serialisable, so an error that
echoes such a value can never become a 500 (``api/errors.py`` uses it for every 422).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.limits import replaying

NONFINITE = "must be a finite number (NaN and infinities are not accepted)"
SURROGATE = "is not valid Unicode: it holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"
NUL = "must not contain NUL characters (\\u0000)"


def _bad_string(text: str) -> str | None:
    if "\x00" in text:
        return NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None


def problems(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, reason) of every non-finite number and bad string in a parsed JSON value."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield path, NONFINITE
    elif isinstance(value, str):
        reason = _bad_string(value)
        if reason:
            yield path, reason
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from problems(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            reason = _bad_string(key)
            if reason:
                yield (*path, json_safe(key)), f"field name {reason}"
            else:
                yield from problems(item, (*path, key))


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(allow_nan=False)`` and UTF-8 accept: non-finite floats
    become strings (``"nan"``, ``"inf"``), lone surrogates become ``\\udXXX`` escapes as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return json_safe(str(value))


def _error(loc: list[Any], reason: str) -> bytes:
    return json.dumps({"detail": [{"loc": loc, "msg": reason, "type": "value_error"}]}).encode()


class InputHygiene:
    """ASGI middleware: a JSON body (or a query string) with the values above gets 422 before routing."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def _reply(self, send: Send, body: bytes) -> None:
        await send({"type": "http.response.start", "status": 422,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string") or b""
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in value or "\x00" in name:
                    await self._reply(send, _error(["query", json_safe(name.replace("\x00", "\\u0000"))], NUL))
                    return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
        # No content type: FastAPI may still parse the body as JSON, so it is checked too.
        if scope.get("method") not in ("POST", "PUT", "PATCH") or not (
                not content_type or content_type == b"application/json" or content_type.endswith(b"+json")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None  # malformed JSON: FastAPI answers it with its own 422
        if parsed is not None:
            for path, reason in problems(parsed):
                await self._reply(send, _error(["body", *path], reason))
                return
        await self.app(scope, replaying(body, receive), send)


__all__ = ["InputHygiene", "json_safe", "problems"]
