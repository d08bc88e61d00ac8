"""A scriptable, misbehaving OpenAI chat-completions server on 127.0.0.1.

Real ``langchain_openai.ChatOpenAI(base_url=server.base_url, api_key="x")``
clients talk to it over HTTP, streamed (SSE) or not, so faults are injected where
they happen in production: in the network and the provider, not in a fake model.

Each request's behaviour is chosen by the request's ``model`` field: a
:class:`Behaviour` queued with :meth:`OpenAIServer.script` (consumed one per
request), else the model's default set with :meth:`OpenAIServer.behave`, else a
normal answer. Behaviours: a normal answer (with logprobs when asked, optionally
a delay per token), an HTTP error status (429 with ``Retry-After``, 500, ...), a
connection reset after some tokens, a hang (until the client disconnects or the
server stops, optionally after some tokens), empty content, malformed or missing
logprobs, and invalid tool calls (arguments that are not JSON, a tool that was
not bound).

What the server saw is public API, for tests that check a client really closed
what it opened (for example a cancelled speculative request):

- :attr:`OpenAIServer.requests`: every request, a :class:`RequestRecord` with its
  body, the behaviour it got, and whether it ``finished`` and whether the client
  ``disconnected`` before the response was complete;
- :meth:`OpenAIServer.open_requests`: the requests still being answered;
- :attr:`OpenAIServer.disconnects`: the requests whose client went away before
  the response finished;
- :meth:`OpenAIServer.wait_idle`: wait until no request is open.

Every response closes its connection (``Connection: close``), so a client keeps
no pooled socket between calls and open file descriptors can be counted before
and after a call. :meth:`OpenAIServer.stop` ends hanging handlers and joins every
thread the server started.

Example:
    .. code-block:: python

        from tests.openai_server import OpenAIServer, hang

        with OpenAIServer() as server:
            server.behave("cheap", hang())
            cheap = ChatOpenAI(model="cheap", base_url=server.base_url, api_key="x")
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "Behaviour",
    "Kind",
    "OpenAIServer",
    "RequestRecord",
    "answer",
    "bad_tool_args",
    "empty",
    "hang",
    "malformed_logprobs",
    "missing_logprobs",
    "reset",
    "status",
    "unknown_tool",
]

Kind = Literal[
    "answer",
    "status",
    "reset",
    "hang",
    "empty",
    "malformed_logprobs",
    "missing_logprobs",
    "bad_tool_args",
    "unknown_tool",
]

_POLL_S = 0.02


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request.

    Attributes:
        kind: What happens (see the module docstring).
        text: The answer's text (split into word tokens).
        logprob: The logprob of every token when logprobs are asked for.
        token_delay_s: Seconds before each token (streamed) or before the whole
            answer (``len(tokens) * token_delay_s``, not streamed).
        status: The HTTP status of a ``status`` behaviour.
        retry_after: The ``Retry-After`` header (seconds) of a ``status`` behaviour.
        after_tokens: Tokens sent before a ``reset`` or a streamed ``hang``.
        tool: The tool named by ``bad_tool_args`` / ``unknown_tool``.
    """

    kind: Kind = "answer"
    text: str = "Paris is the capital of France."
    logprob: float = -0.05
    token_delay_s: float = 0.0
    status: int = 200
    retry_after: float | None = None
    after_tokens: int = 0
    tool: str = "get_weather"


def answer(
    text: str = "Paris is the capital of France.",
    *,
    logprob: float = -0.05,
    token_delay_s: float = 0.0,
) -> Behaviour:
    """A normal answer (logprobs included when the request asks for them)."""
    return Behaviour("answer", text=text, logprob=logprob, token_delay_s=token_delay_s)


def status(code: int, *, retry_after: float | None = None) -> Behaviour:
    """An HTTP error with an OpenAI-style error body (e.g. 429, 500)."""
    return Behaviour("status", status=code, retry_after=retry_after)


def reset(*, after_tokens: int = 1) -> Behaviour:
    """Reset the connection (TCP RST) after ``after_tokens`` tokens.

    Streamed, the client gets that many SSE chunks first; not streamed, the
    headers and part of the body.
    """
    return Behaviour("reset", after_tokens=after_tokens)


def hang(*, after_tokens: int = 0) -> Behaviour:
    """Never answer (after ``after_tokens`` streamed tokens), until the client leaves."""
    return Behaviour("hang", after_tokens=after_tokens)


def empty() -> Behaviour:
    """An answer whose content is the empty string."""
    return Behaviour("empty", text="")


def malformed_logprobs(text: str = "Paris is the capital.") -> Behaviour:
    """An answer whose logprobs are not numbers and not in range.

    The entries carry a string, ``null``, a positive logprob and a missing field.
    """
    return Behaviour("malformed_logprobs", text=text)


def missing_logprobs(text: str = "Paris is the capital.") -> Behaviour:
    """An answer without logprobs even when the request asks for them."""
    return Behaviour("missing_logprobs", text=text)


def bad_tool_args(tool: str = "get_weather") -> Behaviour:
    """A tool call whose arguments are not valid JSON."""
    return Behaviour("bad_tool_args", tool=tool, text="")


def unknown_tool(tool: str = "launch_rocket") -> Behaviour:
    """A well-formed call of a tool that was not bound."""
    return Behaviour("unknown_tool", tool=tool, text="")


@dataclass
class RequestRecord:
    """One request the server received, and how it ended.

    Attributes:
        index: Its number, from 0, in arrival order.
        model: The request's ``model``.
        body: The parsed JSON body.
        stream: Whether the client asked for SSE streaming.
        behaviour: What the server did.
        started: ``time.monotonic()`` on arrival.
        ended: ``time.monotonic()`` when the handler finished, else ``None``.
        finished: The handler is done (the connection is closed).
        completed: The whole response was sent.
        disconnected: The client went away before the response was complete.
    """

    index: int
    model: str
    body: dict[str, Any]
    stream: bool
    behaviour: Behaviour
    started: float
    ended: float | None = None
    finished: bool = False
    completed: bool = False
    disconnected: bool = False


class _ClientGoneError(Exception):
    """The client closed its end before the response was complete."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    record: RequestRecord | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output clean."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            body = {}
        owner = self.server.owner
        record = self.record = owner._arrive(body)
        try:
            _Reply(self, record, owner._stopping).send()
            record.completed = True
        except _ClientGoneError:
            record.disconnected = True
        except OSError:
            record.disconnected = True
        finally:
            self.close_connection = True


class _Reply:
    """Writes one response according to its behaviour."""

    def __init__(
        self, handler: _Handler, record: RequestRecord, stopping: threading.Event
    ) -> None:
        self.handler = handler
        self.record = record
        self.behaviour = record.behaviour
        self.stopping = stopping
        self.sock: socket.socket = handler.connection
        body = record.body
        self.model = record.model
        self.want_logprobs = bool(body.get("logprobs"))
        self.include_usage = bool(
            (body.get("stream_options") or {}).get("include_usage")
        )
        self.tokens = _tokens(self.behaviour.text)

    # --- low-level I/O ---------------------------------------------------------

    def client_gone(self) -> bool:
        """Whether the client closed its end (readable with no data)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, noticing a client that leaves meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if self.client_gone():
                raise _ClientGoneError
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(_POLL_S, left))

    def hang(self) -> None:
        """Wait until the client leaves or the server stops."""
        while not self.stopping.is_set():
            self.wait(_POLL_S)
        raise _ClientGoneError

    def write(self, data: bytes) -> None:
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _ClientGoneError from exc

    def headers(self, code: int, content_type: str, extra: dict[str, str]) -> None:
        self.handler.send_response(code)
        self.handler.send_header("Content-Type", content_type)
        self.handler.send_header("Connection", "close")
        for key, value in extra.items():
            self.handler.send_header(key, value)
        self.handler.end_headers()

    def abort(self) -> None:
        """Close the connection with a TCP reset."""
        self.handler.wfile.flush()
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.handler.rfile.close()
        self.sock.close()

    # --- bodies ------------------------------------------------------------------

    def logprobs(self, tokens: list[str]) -> dict[str, Any] | None:
        kind = self.behaviour.kind
        if not self.want_logprobs or kind == "missing_logprobs":
            return None
        if kind == "malformed_logprobs":
            bad: list[Any] = ["not a number", None, 5.0]
            entries = [
                {"token": t, "logprob": bad[i % 3], "bytes": None, "top_logprobs": []}
                for i, t in enumerate(tokens)
            ]
            entries.append({"token": "?", "bytes": None})
            return {"content": entries}
        return {
            "content": [
                {
                    "token": t,
                    "logprob": self.behaviour.logprob,
                    "bytes": list(t.encode()),
                    "top_logprobs": [],
                }
                for t in tokens
            ]
        }

    def tool_calls(self) -> list[dict[str, Any]] | None:
        kind = self.behaviour.kind
        if kind not in ("bad_tool_args", "unknown_tool"):
            return None
        arguments = '{"city": "Par' if kind == "bad_tool_args" else '{"city": "Paris"}'
        return [
            {
                "id": f"call_{self.record.index}",
                "type": "function",
                "function": {"name": self.behaviour.tool, "arguments": arguments},
            }
        ]

    def usage(self) -> dict[str, int]:
        prompt = sum(
            len(str(m.get("content", "")).split())
            for m in self.record.body.get("messages", [])
        )
        completion = len(self.tokens)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    # --- responses ---------------------------------------------------------------

    def send(self) -> None:
        behaviour = self.behaviour
        if behaviour.kind == "status":
            self.send_status()
        elif behaviour.kind == "hang" and not (
            self.record.stream and behaviour.after_tokens
        ):
            self.hang()
        elif self.record.stream:
            self.send_stream()
        else:
            self.send_whole()

    def send_status(self) -> None:
        code = self.behaviour.status
        extra = {}
        if self.behaviour.retry_after is not None:
            extra["Retry-After"] = f"{self.behaviour.retry_after:g}"
        kind = "rate_limit_exceeded" if code == 429 else "server_error"
        payload = json.dumps(
            {"error": {"message": f"scripted {code}", "type": kind, "code": kind}}
        ).encode()
        extra["Content-Length"] = str(len(payload))
        self.headers(code, "application/json", extra)
        self.write(payload)

    def send_whole(self) -> None:
        self.wait(self.behaviour.token_delay_s * len(self.tokens))
        message: dict[str, Any] = {"role": "assistant", "content": self.behaviour.text}
        if (calls := self.tool_calls()) is not None:
            message = {"role": "assistant", "content": None, "tool_calls": calls}
        payload = json.dumps(
            {
                "id": f"chatcmpl-{self.record.index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": self.logprobs(self.tokens),
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": self.usage(),
            }
        ).encode()
        if self.behaviour.kind == "reset":
            self.headers(200, "application/json", {"Content-Length": str(len(payload))})
            self.write(payload[: len(payload) // 2])
            self.abort()
            raise _ClientGoneError
        self.headers(200, "application/json", {"Content-Length": str(len(payload))})
        self.write(payload)

    def chunk(self, delta: dict[str, Any], **fields: Any) -> bytes:
        data = {
            "id": f"chatcmpl-{self.record.index}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": fields.get("logprobs"),
                    "finish_reason": fields.get("finish_reason"),
                }
            ],
        }
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    def send_stream(self) -> None:
        behaviour = self.behaviour
        self.headers(200, "text/event-stream", {"Cache-Control": "no-cache"})
        self.write(self.chunk({"role": "assistant", "content": ""}))
        stop_at = (
            behaviour.after_tokens if behaviour.kind in ("reset", "hang") else None
        )
        for i, token in enumerate(self.tokens):
            if stop_at is not None and i >= stop_at:
                break
            self.wait(behaviour.token_delay_s)
            self.write(self.chunk({"content": token}, logprobs=self.logprobs([token])))
        if behaviour.kind == "reset":
            self.abort()
            raise _ClientGoneError
        if behaviour.kind == "hang":
            self.hang()
        if (calls := self.tool_calls()) is not None:
            call = calls[0]
            delta = {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": call["function"],
                    }
                ]
            }
            self.write(self.chunk(delta))
        if behaviour.kind == "empty" or not self.tokens:
            self.write(self.chunk({"content": ""}, logprobs=self.logprobs([])))
        finish = "tool_calls" if self.tool_calls() else "stop"
        self.write(self.chunk({}, finish_reason=finish))
        if self.include_usage:
            usage = {
                "id": f"chatcmpl-{self.record.index}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            }
            self.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        self.write(b"data: [DONE]\n\n")


def _tokens(text: str) -> list[str]:
    """Word tokens that concatenate back to ``text``."""
    words = text.split(" ")
    return (
        [w if i == 0 else " " + w for i, w in enumerate(words) if w or i == 0]
        if text
        else []
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    owner: OpenAIServer

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one connection; the request counts as open until it is closed."""
        record = None
        try:
            record = _Handler(request, client_address, self).record
        except Exception:  # a broken connection
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            if record is not None:
                self.owner._leave(record)


@dataclass
class OpenAIServer:
    """The server; start and stop it with ``with`` (or :meth:`start` / :meth:`stop`).

    Attributes:
        requests: Every request received, in order.
    """

    requests: list[RequestRecord] = field(default_factory=list)
    _defaults: dict[str, Behaviour] = field(default_factory=dict)
    _queues: dict[str, list[Behaviour]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Condition = field(init=False)
    _open: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _httpd: _Server | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._idle = threading.Condition(self._lock)

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="openai-test-server",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End hanging handlers, stop serving and join every server thread."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._httpd is not None, "the server is not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give ``ChatOpenAI``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- scripting -------------------------------------------------------------

    def behave(self, model: str, behaviour: Behaviour) -> None:
        """Answer every request for ``model`` this way (when nothing is queued)."""
        with self._lock:
            self._defaults[model] = behaviour

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Answer the next requests for ``model`` with ``behaviours``, in order."""
        with self._lock:
            self._queues.setdefault(model, []).extend(behaviours)

    def reset_script(self) -> None:
        """Forget every default, queue and record."""
        with self._lock:
            self._defaults.clear()
            self._queues.clear()
            self.requests.clear()

    # --- what happened ----------------------------------------------------------

    def open_requests(self) -> list[RequestRecord]:
        """The requests whose handler has not finished yet."""
        with self._lock:
            return [r for r in self.requests if not r.finished]

    @property
    def disconnects(self) -> list[RequestRecord]:
        """The requests whose client went away before the response was complete."""
        with self._lock:
            return [r for r in self.requests if r.disconnected]

    def requests_for(self, model: str) -> list[RequestRecord]:
        """The requests for one model."""
        with self._lock:
            return [r for r in self.requests if r.model == model]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is open; ``False`` when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._open:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # --- handler side ------------------------------------------------------------

    def _arrive(self, body: dict[str, Any]) -> RequestRecord:
        model = str(body.get("model", ""))
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                behaviour = queue.pop(0)
            else:
                behaviour = self._defaults.get(model, Behaviour())
            record = RequestRecord(
                index=len(self.requests),
                model=model,
                body=body,
                stream=bool(body.get("stream")),
                behaviour=behaviour,
                started=time.monotonic(),
            )
            self.requests.append(record)
            self._open += 1
        return record

    def _leave(self, record: RequestRecord) -> None:
        with self._idle:
            record.ended = time.monotonic()
            record.finished = True
            self._open -= 1
            self._idle.notify_all()


@contextlib.contextmanager
def serving() -> Iterator[OpenAIServer]:
    """A started server, stopped on exit (for pytest fixtures and scripts)."""
    server = OpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
