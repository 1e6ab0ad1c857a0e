"""TEST DOUBLE of an OpenAI-compatible LLM server (such as vLLM's ``vllm serve``). It is not a model.

``OpenAIDouble`` is a real HTTP server on a free loopback port (stdlib ``ThreadingHTTPServer`` in a
background thread) that speaks the OpenAI wire format for ``POST /v1/chat/completions`` and
``GET /v1/models``. It does not generate anything: every chat request consumes the next scripted
behaviour from a queue:

* ``reply(content, usage=..., delay=...)``: answer with ``content`` (a dict/list is sent as JSON text);
* ``malformed(text)``: answer with text that is not valid JSON;
* ``status(429 | 500 | ..., retry_after=...)``: fail with that HTTP status and an OpenAI error body;
* ``delay(seconds, content=...)``: wait (to trigger client timeouts), then answer.

When the queue is empty, ``responder`` (a function of the request body) decides, if set; otherwise the
double answers HTTP 400 "script exhausted", which tests notice. ``answer_by(fn)`` sets a responder
that answers ``fn(body)`` (e.g. scripted by the request's ``seed``, ``model`` or ``temperature``,
which ``RecordedRequest`` exposes), optionally after a delay. Every request is recorded (messages,
``response_format``, the whole body) and the largest number of requests in flight at once is kept in
``max_in_flight`` so tests can check a client's concurrency bound.

Example:
    >>> with OpenAIDouble() as double:
    ...     double.reply({"relations": []}, usage=(12, 3))
    ...     llm = OpenAICompatibleLLM(base_url=double.base_url, model=double.model)
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

DEFAULT_MODEL = "double/scripted-model"


@dataclass
class Behaviour:
    """One scripted answer. ``status`` 200 answers ``content``; anything else is an HTTP error."""

    content: str = ""
    status: int = 200
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens); None: word counts
    delay: float = 0.0
    finish_reason: str = "stop"
    retry_after: float | None = None
    model: str | None = None


@dataclass
class RecordedRequest:
    """What a client sent, as the double received it."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]  # names lower-cased
    started: float
    finished: float | None = None
    behaviour: Behaviour | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def response_format(self) -> dict[str, Any] | None:
        return self.body.get("response_format")

    @property
    def seed(self) -> int | None:
        return self.body.get("seed")

    @property
    def temperature(self) -> float | None:
        return self.body.get("temperature")

    @property
    def model(self) -> str | None:
        return self.body.get("model")


@dataclass
class _State:
    script: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class OpenAIDouble:
    """A scripted OpenAI-compatible HTTP server for tests (a TEST DOUBLE, not a model)."""

    Behaviour = Behaviour  # so a ``responder`` can build behaviours without importing this module

    def __init__(self, model: str = DEFAULT_MODEL):
        self.model = model
        self.responder: Callable[[dict[str, Any]], Behaviour] | None = None
        self._state = _State()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Self:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    double._send(
                        self,
                        200,
                        {
                            "object": "list",
                            "data": [{"id": double.model, "object": "model", "owned_by": "test-double"}],
                        },
                    )
                else:
                    double._send(self, 404, _error(f"no route GET {self.path}", "not_found"))

            def do_POST(self) -> None:
                double._handle_post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="openai-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # --- scripting -----------------------------------------------------------------------------
    def reply(
        self,
        content: Any,
        *,
        usage: tuple[int, int] | None = None,
        delay: float = 0.0,
        times: int = 1,
        finish_reason: str = "stop",
        model: str | None = None,
    ) -> OpenAIDouble:
        """Answer ``content`` (dicts and lists are sent as JSON text) ``times`` times."""
        text = content if isinstance(content, str) else json.dumps(content)
        for _ in range(times):
            self._push(
                Behaviour(content=text, usage=usage, delay=delay, finish_reason=finish_reason, model=model)
            )
        return self

    def malformed(
        self,
        text: str = '{"relations": [{"relation": "BRAND_OF", ',
        *,
        usage: tuple[int, int] | None = None,
        times: int = 1,
    ) -> OpenAIDouble:
        """Answer text that is not valid JSON (by default: JSON cut off mid-object)."""
        for _ in range(times):
            self._push(Behaviour(content=text, usage=usage))
        return self

    def status(self, code: int, *, times: int = 1, retry_after: float | None = None) -> OpenAIDouble:
        """Fail with HTTP ``code`` (e.g. 429, 500) and an OpenAI-style error body."""
        for _ in range(times):
            self._push(Behaviour(status=code, retry_after=retry_after))
        return self

    def delay(self, seconds: float, content: Any = "{}", *, times: int = 1) -> OpenAIDouble:
        """Wait ``seconds`` before answering ``content`` (longer than a client timeout: a timeout)."""
        return self.reply(content, delay=seconds, times=times)

    def answer_by(
        self, answer: Callable[[dict[str, Any]], Any], *, delay: float = 0.0, usage: tuple[int, int] | None = None
    ) -> OpenAIDouble:
        """Once the script is used up, answer every request with ``answer(body)`` (dicts and lists are
        sent as JSON text) after ``delay`` seconds: an answer per seed, model or temperature."""

        def respond(body: dict[str, Any]) -> Behaviour:
            content = answer(body)
            text = content if isinstance(content, str) else json.dumps(content)
            return Behaviour(content=text, delay=delay, usage=usage)

        self.responder = respond
        return self

    def _push(self, behaviour: Behaviour) -> None:
        with self._state.lock:
            self._state.script.append(behaviour)

    # --- inspection ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat requests received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def max_in_flight(self) -> int:
        with self._state.lock:
            return self._state.max_in_flight

    @property
    def pending(self) -> int:
        """Scripted behaviours not consumed yet."""
        with self._state.lock:
            return len(self._state.script)

    def reset(self) -> None:
        with self._state.lock:
            self._state.script.clear()
            self._state.requests.clear()
            self._state.max_in_flight = 0
        self.responder = None

    # --- serving -------------------------------------------------------------------------------
    def _handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if handler.path.rstrip("/") != "/v1/chat/completions":
            self._send(handler, 404, _error(f"no route POST {handler.path}", "not_found"))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(handler, 400, _error("request body is not JSON", "invalid_request_error"))
            return
        record = RecordedRequest(
            path=handler.path,
            body=body,
            headers={k.lower(): v for k, v in handler.headers.items()},
            started=time.monotonic(),
        )
        with self._state.lock:
            self._state.requests.append(record)
            self._state.in_flight += 1
            self._state.max_in_flight = max(self._state.max_in_flight, self._state.in_flight)
            behaviour = self._state.script.popleft() if self._state.script else None
        try:
            if behaviour is None and self.responder is not None:
                behaviour = self.responder(body)
            record.behaviour = behaviour
            if behaviour is None:
                self._send(
                    handler,
                    400,
                    _error(
                        "test double: script exhausted (no behaviour left for this request)",
                        "invalid_request_error",
                    ),
                )
                return
            if behaviour.delay:
                self._stopping.wait(behaviour.delay)  # returns early when the double stops
            if behaviour.status != 200:
                headers = (
                    {"Retry-After": str(behaviour.retry_after)} if behaviour.retry_after is not None else {}
                )
                kind = "rate_limit_exceeded" if behaviour.status == 429 else "server_error"
                self._send(
                    handler, behaviour.status, _error(f"scripted HTTP {behaviour.status}", kind), headers
                )
                return
            self._send(handler, 200, self._completion(body, behaviour))
        finally:
            with self._state.lock:
                self._state.in_flight -= 1
            record.finished = time.monotonic()

    def _completion(self, body: dict[str, Any], b: Behaviour) -> dict[str, Any]:
        if b.usage is not None:
            prompt_tokens, completion_tokens = b.usage
        else:
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            completion_tokens = len(b.content.split())
        return {
            "id": f"chatcmpl-double-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": b.model or body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": b.content},
                    "finish_reason": b.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        code: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test); nothing to answer to


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
