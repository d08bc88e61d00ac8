"""An in-process LangSmith ingest receiver for tests (127.0.0.1 only).

``LangSmithReceiver`` is a small ``ThreadingHTTPServer`` that speaks enough of the
LangSmith ingest protocol for the *real* ``langsmith.Client`` (checked against
langsmith 0.15.1 / langchain-core 1.8.3) to send it runs::

    with LangSmithReceiver() as rx:
        tracer = rx.tracer(project_name="p")
        chain.invoke(x, config={"callbacks": [tracer]})
        tracer.wait_for_futures()              # == tracer.client.flush()
        assert rx.wait_for(lambda runs: len(runs) == 3), rx.tree()
        root = rx.find(name="RunnableSequence")[0]
        assert [r["name"] for r in rx.children_of(root["id"])] == [...]

Endpoints: ``GET /info``; ``POST /runs/multipart`` (optionally
``Content-Encoding: zstd``); ``POST /runs/batch``; ``POST /runs``;
``PATCH /runs/<id>``; and the read side the client's dataset, experiment and
query methods use: ``POST``/``GET /datasets`` (``?name=``), ``GET
/datasets/<id>``, ``POST /examples``, ``POST /examples/bulk``, ``GET /examples``
(``?dataset=&offset=&limit=``), ``POST``/``GET /sessions`` (projects,
``?name=``) and the v2 runs query ``POST /api/v2/runs/query`` (the client's
``runs.query``: by project, time window, run type, trace, ids, root-ness,
error and reference example, with ``selects`` and cursor pages; see
``LangSmithReceiver._query_runs_v2``; the filter languages are refused with a
400, never answered wrongly). The deprecated v1 ``POST /runs/query``
(``Client.list_runs``) is not served, so a reader still using it shows up in
``unexpected_requests``. ``add_dataset()`` seeds a dataset directly. Anything
else gets a 404 and lands in ``unexpected_requests``; bodies that cannot be
parsed (or queries the receiver does not implement) get a 400 and land in
``errors``. Runs are merged by id: the ``post`` body, then every ``patch``'s
non-null fields. Each merged run also carries ``_received`` (the list of
operations that arrived for it, e.g. ``["post", "patch"]``).

What the langsmith client does, and what this module does about it:

* ``/info`` is fetched once per ``Client``, lazily, by its background tracing
  thread. If ``batch_ingest_config`` is present it must hold ``size_limit``,
  ``scale_up_qsize_trigger`` and ``scale_up_nthreads_limit``: the thread
  indexes them directly and a missing one kills it with a ``KeyError``, after
  which nothing is sent (checked: dropping ``size_limit`` does exactly that).
  ``batch_ingest_config.use_multipart_endpoint = False`` makes it use
  ``/runs/batch``; a 404 from ``/runs/multipart`` makes it resend that batch
  to ``/runs/batch`` (the running thread still tries multipart first for the
  next batch; checked). ``Client(auto_batch_tracing=False)`` sends
  ``POST /runs`` + ``PATCH /runs/<id>`` instead.
* Compression: zstd is used only when ``/info`` has
  ``instance_flags.zstd_compression_enabled``, ``zstandard`` is importable,
  the tracing mode is ``"langsmith"`` and ``LANGSMITH_DISABLE_RUN_COMPRESSION``
  is not set. Without the flag the client logs a warning ("Run compression is
  not enabled...") and sends plain multipart. The decision is taken once, by
  the background thread *after* ``/info`` answers; runs created before that go
  plain (multipart through the queue), later ones go compressed. So a fresh
  client sends a mix of both unless you wait first: ``rx.client()`` waits
  until ``client.compressed_traces`` is set (``rx.wait_client_ready``).
* Flushing: ``client.flush()`` joins the tracing queue *and* drains the
  compressed buffer (which otherwise goes out about every 0.5 s).
  ``LangChainTracer.wait_for_futures()`` just calls ``self.client.flush()``.
  ``langchain_core.tracers.langchain.wait_for_all_tracers()`` flushes only the
  cached default client ``langsmith.run_trees._CLIENT``; it does NOT flush a
  tracer built with an explicit ``client=``. A post and a patch of the same run
  in one batch are merged client-side into one ``post``. ``flush()`` without a
  timeout blocks forever if the tracing thread died (e.g. the ``KeyError``
  above): ``rx.flush(timeout=...)`` flushes this receiver's clients boundedly.
* Caching (what matters for env-var driven tests):
  ``langsmith.utils.get_env_var`` is ``lru_cache``'d, and it answers
  ``tracing_is_enabled()`` (TRACING_V2 / TRACING), the sampling rate, hide-*,
  compression switches, the ``get_api_url``/``get_api_key`` fallbacks, etc.;
  ``langsmith.utils.get_tracer_project`` is cached separately (project name).
  Clear both after setting the env AND again after restoring it, or tracing
  stays on after the test (and later tests send to the real endpoint) or stays
  off. ``Client.__init__`` itself reads ENDPOINT / API_KEY uncached.
  ``LangChainTracer()`` without a client uses ``langsmith.run_trees._CLIENT``,
  created once by ``get_cached_client()`` and keeping the endpoint it was built
  with; set it to ``None`` (langchain-core 1.8 has no client cache of its own:
  ``langchain_core.tracers.langchain.get_client()`` delegates to it).
  ``reset_langsmith_caches()``, ``release_default_client()``, ``rx.env()``
  and ``rx.traced_env()`` below do this.
* Namespaces: each setting is looked up as ``LANGSMITH_X`` then
  ``LANGCHAIN_X``, and TRACING_V2 is checked before TRACING, so a stray
  ``LANGCHAIN_TRACING_V2=false`` beats ``LANGSMITH_TRACING=true``; ``rx.env()``
  unsets the variables that could interfere.
* Network: ``requests`` honours ``HTTP(S)_PROXY``/``ALL_PROXY`` for 127.0.0.1
  unless ``NO_PROXY`` covers it. ``rx.client()`` uses a ``requests.Session``
  with ``trust_env=False``; ``rx.env()`` drops proxy variables and sets
  ``NO_PROXY``. Besides ``/info`` and the ingest endpoints, tracing sends
  nothing else. Each ``Client`` starts non-daemon background threads; clients
  made by ``rx.client()`` are flushed and closed when the receiver stops.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import email.parser
import email.policy
import io
import json
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast

import langsmith
import langsmith.run_trees
import langsmith.utils
import requests
import zstandard
from langchain_core.tracers import LangChainTracer

__all__ = [
    "LangSmithReceiver",
    "RecordedRequest",
    "Run",
    "release_default_client",
    "reset_langsmith_caches",
]

Run = dict[str, Any]

_RUN_DEFAULTS: dict[str, Any] = {
    "id": None,
    "name": None,
    "run_type": None,
    "parent_run_id": None,
    "trace_id": None,
    "dotted_order": None,
    "session_name": None,
    "tags": [],
    "inputs": {},
    "outputs": None,
    "extra": {},
    "error": None,
    "events": [],
    "start_time": None,
    "end_time": None,
}

_SUBPART_KEYS = frozenset(
    {"inputs", "outputs", "events", "extra", "error", "serialized"}
)

# LANGSMITH_X / LANGCHAIN_X settings that could redirect, disable or alter tracing.
_INTERFERING_SETTINGS = (
    "TRACING_V2",
    "PROJECT",
    "SESSION",
    "RUNS_ENDPOINTS",
    "TRACING_MODE",
    "OTEL_ENABLED",
    "OTEL_ONLY",
    "DISABLE_RUN_COMPRESSION",
    "TRACING_SAMPLING_RATE",
    "HIDE_INPUTS",
    "HIDE_OUTPUTS",
    "HIDE_METADATA",
    "USE_PYO3_CLIENT",
    "WORKSPACE_ID",
    "PROFILE",
)
_PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def reset_langsmith_caches() -> None:
    """Forget every environment lookup langsmith has cached.

    Call it after changing ``LANGSMITH_*``/``LANGCHAIN_*`` variables and again
    after restoring them. It does not touch the default client (see
    ``release_default_client``).
    """
    cast("Any", langsmith.utils.get_env_var).cache_clear()
    cast("Any", langsmith.utils.get_tracer_project).cache_clear()
    # `RunTree.patch` decides from LANGSMITH_EXCLUDE_INPUTS_ON_PATCH once.
    exclude_inputs = getattr(langsmith.run_trees, "_exclude_inputs_on_patch", None)
    if exclude_inputs is not None and hasattr(exclude_inputs, "cache_clear"):
        exclude_inputs.cache_clear()


def release_default_client(timeout: float = 10.0) -> None:
    """Flush and close langsmith's cached default client, then forget it.

    The next ``LangChainTracer()`` (or ``get_cached_client()``) builds a new one
    from the current environment. Call it while the receiver the client points
    at is still running, or the flush has nowhere to go.
    """
    client = langsmith.run_trees._CLIENT
    langsmith.run_trees._CLIENT = None
    if client is not None:
        client.close(timeout=timeout)


@dataclass
class RecordedRequest:
    """One HTTP request as the receiver saw it.

    ``raw`` is the body as sent on the wire; ``body`` is after ``Content-Encoding``.
    """

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: bytes
    content_encoding: str | None
    status: int = 0
    run_ids: list[str] = field(default_factory=list)
    path_query: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: LangSmithReceiver


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep the test output quiet."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        raw = self._read_body()
        status, payload = self.server.receiver._dispatch(
            self.command, self.path, dict(self.headers.items()), raw
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding.lower() == "identity":
        return body
    if encoding.lower() == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(body), read_across_frames=True
        )
        with reader:
            return reader.read()
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """Split a multipart/form-data body into (part name, payload bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "latin-1"
    )
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError(f"not a multipart body (Content-Type: {content_type!r})")
    if message.defects:
        raise ValueError(f"malformed multipart body: {message.defects!r}")
    parts: list[tuple[str, bytes]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise TypeError(f"multipart part without a name: {dict(part.items())!r}")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise TypeError(f"part {name!r} has no byte payload")
        parts.append((name, payload))
    return parts


def _json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8")) if data else None


class LangSmithReceiver:
    """A LangSmith ingest endpoint on ``127.0.0.1:<free port>`` that records runs.

    Args:
        zstd: advertise ``instance_flags.zstd_compression_enabled`` in ``/info``
            (zstd bodies are decoded either way).
        use_multipart_endpoint: advertise multipart ingestion; ``False`` makes the
            client send ``POST /runs/batch`` JSON instead.
        info_overrides: merged into the ``/info`` answer.
    """

    def __init__(
        self,
        *,
        zstd: bool = True,
        use_multipart_endpoint: bool = True,
        info_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.zstd = zstd
        self.use_multipart_endpoint = use_multipart_endpoint
        self.info: dict[str, Any] = {
            # The v2 runs query needs self-hosted LangSmith 0.16 or later.
            "version": "0.16.0",
            "license_expiration_time": None,
            "batch_ingest_config": {
                "use_multipart_endpoint": use_multipart_endpoint,
                "size_limit": 100,
                "size_limit_bytes": 20 * 1024 * 1024,
                "scale_up_qsize_trigger": 1000,
                "scale_up_nthreads_limit": 16,
                "scale_down_nempty_trigger": 4,
            },
            "instance_flags": {"zstd_compression_enabled": zstd},
        }
        self.info.update(info_overrides or {})
        self._lock = threading.Condition()
        self._order: list[str] = []
        self._posts: dict[str, list[dict[str, Any]]] = {}
        self._patches: dict[str, list[dict[str, Any]]] = {}
        self._attachments: dict[str, dict[str, bytes]] = {}
        self._feedback: list[Any] = []
        self._requests: list[RecordedRequest] = []
        self._unexpected: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._clients: list[langsmith.Client] = []
        self._datasets: dict[str, dict[str, Any]] = {}
        self._examples: dict[str, dict[str, Any]] = {}
        self._sessions: dict[str, dict[str, Any]] = {}
        self._arrived: dict[str, str] = {}  # run id -> when it first arrived
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Bind 127.0.0.1:0 and serve in a background thread."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="langsmith-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, flush_timeout: float = 10.0) -> None:
        """Flush and close the clients made by ``client()``, then stop serving."""
        clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):
                client.close(timeout=flush_timeout)
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("receiver is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---------------------------------------------------------------- clients
    def client(self, *, wait_ready: bool = True, **kwargs: Any) -> langsmith.Client:
        """A real ``langsmith.Client`` that talks only to this receiver.

        Keyword arguments override the defaults (e.g. ``auto_batch_tracing=False``).
        With ``wait_ready`` (default) it returns once the client has read
        ``/info`` and, when zstd is in play, switched compression on.
        """
        session = requests.Session()
        session.trust_env = False  # no proxies, no .netrc
        options: dict[str, Any] = {
            "api_url": self.url,
            "api_key": "test",
            "session": session,
            "tracing_mode": "langsmith",
            "tracing_sampling_rate": 1.0,
            "hide_inputs": False,
            "hide_outputs": False,
            "hide_metadata": False,
            "disable_prompt_cache": True,
            "timeout_ms": (5_000, 20_000),
        }
        options.update(kwargs)
        client = langsmith.Client(**options)
        self._clients.append(client)
        if wait_ready:
            self.wait_client_ready(client)
        return client

    def wait_client_ready(
        self, client: langsmith.Client, timeout: float = 10.0
    ) -> None:
        """Wait until ``client``'s tracing thread has read ``/info`` (and enabled zstd).

        Raises ``TimeoutError`` if compression was expected but never switched on.
        """
        if client.tracing_queue is None:
            return
        expect_zstd = (
            self.zstd
            and self.use_multipart_endpoint
            and not langsmith.utils.is_env_var_truish("DISABLE_RUN_COMPRESSION")
            and client._tracing_mode == "langsmith"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info_loaded = client._info is not None
            if info_loaded and (
                client.compressed_traces is not None or not expect_zstd
            ):
                return
            time.sleep(0.01)
        raise TimeoutError(
            f"langsmith client not ready after {timeout}s (expected zstd: {expect_zstd})"
        )

    def flush(self, timeout: float = 10.0) -> None:
        """Flush every client made by ``client()``, waiting at most ``timeout`` each.

        Prefer this to a bare ``client.flush()`` / ``tracer.wait_for_futures()``:
        those wait forever if the client's tracing thread has died.
        """
        for client in list(self._clients):
            client.flush(timeout=timeout)

    def tracer(
        self,
        project_name: str = "langsmith-receiver",
        *,
        client: langsmith.Client | None = None,
        **kwargs: Any,
    ) -> LangChainTracer:
        """A ``LangChainTracer`` sending to this receiver (flush: ``wait_for_futures()``)."""
        return LangChainTracer(
            client=client or self.client(), project_name=project_name, **kwargs
        )

    def env(self, project_name: str = "langsmith-receiver") -> dict[str, str | None]:
        """Environment for env-var driven tracing into this receiver.

        ``None`` values mean "unset". Apply it, call ``reset_langsmith_caches()``
        and drop the default client (``langsmith.run_trees._CLIENT = None``);
        undo all three afterwards (``traced_env()`` does all of it).
        """
        env: dict[str, str | None] = {}
        for name in _INTERFERING_SETTINGS:
            env[f"LANGSMITH_{name}"] = None
            env[f"LANGCHAIN_{name}"] = None
        for name in ("TRACING", "ENDPOINT", "API_KEY"):
            env[f"LANGCHAIN_{name}"] = None
        env["HOSTED_LANGSERVE_PROJECT_NAME"] = None
        for name in _PROXY_VARS:
            env[name] = None
        env.update(
            {
                "LANGSMITH_TRACING": "true",
                "LANGSMITH_ENDPOINT": self.url,
                "LANGSMITH_API_KEY": "x",
                "LANGSMITH_PROJECT": project_name,
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        return env

    @contextlib.contextmanager
    def traced_env(self, project_name: str = "langsmith-receiver") -> Iterator[None]:
        """Turn on env-var tracing into this receiver; restore everything on exit.

        On exit the default client is flushed into this receiver and closed, and
        the environment, langsmith's caches and ``run_trees._CLIENT`` are restored.
        """
        saved_env = {name: os.environ.get(name) for name in self.env(project_name)}
        saved_client = langsmith.run_trees._CLIENT
        try:
            for name, value in self.env(project_name).items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            langsmith.run_trees._CLIENT = None
            reset_langsmith_caches()
            yield
        finally:
            try:
                release_default_client()
            finally:
                for name, value in saved_env.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                langsmith.run_trees._CLIENT = saved_client
                reset_langsmith_caches()

    # ------------------------------------------------------------ recorded data
    @property
    def runs(self) -> dict[str, Run]:
        """Snapshot of the merged runs, by id, in order of first arrival."""
        with self._lock:
            return {run_id: self._materialize(run_id) for run_id in self._order}

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def unexpected_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._unexpected)

    @property
    def errors(self) -> list[str]:
        """Bodies the receiver could not parse (each answered with a 400)."""
        with self._lock:
            return list(self._errors)

    @property
    def feedback(self) -> list[Any]:
        with self._lock:
            return copy.deepcopy(self._feedback)

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._lock:
            self._order.clear()
            self._arrived.clear()
            self._posts.clear()
            self._patches.clear()
            self._attachments.clear()
            self._feedback.clear()
            self._requests.clear()
            self._unexpected.clear()
            self._errors.clear()

    def wait_for(
        self, predicate: Callable[[dict[str, Run]], bool], timeout: float = 10.0
    ) -> bool:
        """Wait until ``predicate(rx.runs)`` is true; return whether it became true."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                runs = {run_id: self._materialize(run_id) for run_id in self._order}
                if predicate(runs):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))

    def wait_for_runs(
        self, count: int, *, ended: bool = True, timeout: float = 10.0
    ) -> bool:
        """Wait for at least ``count`` runs (all with ``end_time`` when ``ended``)."""

        def done(runs: dict[str, Run]) -> bool:
            return len(runs) >= count and (
                not ended or all(r["end_time"] for r in runs.values())
            )

        return self.wait_for(done, timeout=timeout)

    def find(
        self,
        name: str | None = None,
        tag: str | None = None,
        *,
        run_type: str | None = None,
        parent_run_id: str | uuid.UUID | None = None,
    ) -> list[Run]:
        """Runs matching every given criterion, ordered by ``dotted_order``."""
        parent = str(parent_run_id) if parent_run_id is not None else None
        found = [
            run
            for run in self.runs.values()
            if (name is None or run["name"] == name)
            and (tag is None or tag in (run["tags"] or []))
            and (run_type is None or run["run_type"] == run_type)
            and (parent is None or run["parent_run_id"] == parent)
        ]
        return sorted(found, key=_sort_key)

    def children_of(self, run_id: str | uuid.UUID) -> list[Run]:
        """Direct children of ``run_id``, ordered by ``dotted_order``."""
        parent = str(run_id)
        return sorted(
            (r for r in self.runs.values() if r["parent_run_id"] == parent),
            key=_sort_key,
        )

    def ancestor(self, run: Run, name: str) -> Run | None:
        """The nearest run above ``run`` named ``name``, or ``None``."""
        while run.get("parent_run_id"):
            run = self.runs[str(run["parent_run_id"])]
            if run["name"] == name:
                return run
        return None

    def roots(self) -> list[Run]:
        """Runs without a parent, ordered by ``dotted_order``."""
        return sorted(
            (r for r in self.runs.values() if not r["parent_run_id"]), key=_sort_key
        )

    def tree(self, *, outputs: bool = False) -> str:
        """Indented text of every received run, for assertion messages."""
        runs = self.runs
        by_parent: dict[str | None, list[Run]] = {}
        for run in runs.values():
            parent = run["parent_run_id"] if run["parent_run_id"] in runs else None
            by_parent.setdefault(parent, []).append(run)
        lines: list[str] = []

        def emit(run: Run, depth: int) -> None:
            line = f"{'  ' * depth}- {run['name']} [{run['run_type']}] id=...{str(run['id'])[-12:]}"
            if run["parent_run_id"] and run["parent_run_id"] not in runs:
                line += f" parent=...{run['parent_run_id'][-12:]}(missing)"
            line += f" tags={run['tags']} ops={run['_received']}"
            if not run["end_time"]:
                line += " (not ended)"
            if run["error"]:
                line += f" error={str(run['error'])[:80]!r}"
            if outputs:
                line += f" outputs={json.dumps(run['outputs'], default=str)[:200]}"
            lines.append(line)
            for child in sorted(by_parent.get(str(run["id"]), []), key=_sort_key):
                emit(child, depth + 1)

        for root in sorted(by_parent.get(None, []), key=_sort_key):
            emit(root, 0)
        if not lines:
            lines.append("(no runs received)")
        with self._lock:
            if self._unexpected:
                lines.append(
                    f"unexpected: {[(r.method, r.path) for r in self._unexpected]}"
                )
            if self._errors:
                lines.append(f"errors: {self._errors}")
        return "\n".join(lines)

    # --------------------------------------------------------------- internals
    def _materialize(self, run_id: str) -> Run:
        """A snapshot of the merged run (a copy the caller may keep)."""
        return copy.deepcopy(self._merged(run_id))

    def _merged(self, run_id: str) -> Run:
        """The merged run, sharing the stored values: to read under the lock only."""
        run: Run = dict(_RUN_DEFAULTS)
        received: list[str] = []
        for post in self._posts.get(run_id, []):
            run.update(post)
            received.append("post")
        for patch in self._patches.get(run_id, []):
            run.update({k: v for k, v in patch.items() if v is not None})
            received.append("patch")
        run["id"] = run_id
        for key in ("parent_run_id", "trace_id"):
            if run[key] is not None:
                run[key] = str(run[key])
        if run_id in self._attachments:
            run["attachments"] = dict(self._attachments[run_id])
        run["_received"] = received
        return run

    def _store(self, operation: str, body: dict[str, Any]) -> str:
        run_id = str(body["id"])
        if run_id not in self._posts and run_id not in self._patches:
            self._order.append(run_id)
            self._arrived[run_id] = _now()
        target = self._posts if operation == "post" else self._patches
        target.setdefault(run_id, []).append(body)
        return run_id

    def _dispatch(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        path = raw_path.split("?", 1)[0].rstrip("/") or "/"
        lowered = {k.lower(): v for k, v in headers.items()}
        encoding = lowered.get("content-encoding")
        record = RecordedRequest(method, path, headers, raw, raw, encoding)
        record.path_query = raw_path
        with self._lock:
            self._requests.append(record)
            try:
                record.body = _decompress(raw, encoding)
                status, payload = self._route_read(method, path, record) or self._route(
                    method, path, lowered, record
                )
            except Exception as exc:  # answer 400, keep the reason for the test
                self._errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
                status, payload = 400, {"detail": f"{type(exc).__name__}: {exc}"}
            record.status = status
            if status == 404:
                self._unexpected.append(record)
            self._lock.notify_all()
        return status, payload

    def _route(
        self, method: str, path: str, headers: dict[str, str], record: RecordedRequest
    ) -> tuple[int, Any]:
        if method == "GET" and path == "/info":
            return 200, self.info
        if method == "POST" and path == "/runs/multipart":
            record.run_ids = self._ingest_multipart(
                headers.get("content-type", ""), record.body
            )
            return 202, {"status": "accepted"}
        if method == "POST" and path == "/runs/batch":
            batch = _json(record.body) or {}
            ids = [self._store("post", dict(run)) for run in batch.get("post") or []]
            ids += [self._store("patch", dict(run)) for run in batch.get("patch") or []]
            record.run_ids = ids
            return 202, {"status": "accepted"}
        if method == "POST" and path == "/runs":
            record.run_ids = [self._store("post", dict(_json(record.body)))]
            return 202, {"status": "accepted"}
        if method == "PATCH" and path.startswith("/runs/") and path.count("/") == 2:
            body = dict(_json(record.body) or {})
            body["id"] = str(uuid.UUID(path.rsplit("/", 1)[1]))
            record.run_ids = [self._store("patch", body)]
            return 202, {"status": "accepted"}
        return 404, {"detail": "Not Found"}

    # ------------------------------------------------- datasets, examples, runs query
    def add_dataset(
        self, name: str, examples: Sequence[Mapping[str, Any]] = ()
    ) -> dict[str, Any]:
        """Create a dataset directly (as if made in the LangSmith UI).

        Args:
            name: The dataset's name.
            examples: ``{"inputs": {...}, "outputs": {...}}`` items.

        Returns:
            The stored dataset.
        """
        with self._lock:
            dataset = self._new_dataset({"name": name})
            for example in examples:
                self._new_example({**example, "dataset_id": dataset["id"]})
            return dataset

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        """Projects (LangSmith "sessions") created through the API, by id."""
        with self._lock:
            return {k: dict(v) for k, v in self._sessions.items()}

    def _new_dataset(self, body: Mapping[str, Any]) -> dict[str, Any]:
        if any(d["name"] == body["name"] for d in self._datasets.values()):
            raise _ConflictError(f"dataset {body['name']!r} exists")
        dataset = {
            "id": str(uuid.uuid4()),
            "name": body["name"],
            "description": body.get("description"),
            "data_type": body.get("data_type", "kv"),
            "created_at": _now(),
            "modified_at": _now(),
            "example_count": 0,
            "session_count": 0,
            "inputs_schema_definition": body.get("inputs_schema_definition"),
            "outputs_schema_definition": body.get("outputs_schema_definition"),
            "metadata": body.get("extra", {}).get("metadata")
            if body.get("extra")
            else None,
        }
        self._datasets[dataset["id"]] = dataset
        return dataset

    def _new_example(self, body: Mapping[str, Any]) -> dict[str, Any]:
        dataset_id = str(body["dataset_id"])
        if dataset_id not in self._datasets:
            raise ValueError(f"no dataset {dataset_id}")
        example: dict[str, Any] = {
            "id": str(body.get("id") or uuid.uuid4()),
            "dataset_id": dataset_id,
            "inputs": dict(body.get("inputs") or {}),
            "outputs": body.get("outputs"),
            "metadata": body.get("metadata"),
            "split": body.get("split"),
            "created_at": _now(),
            "modified_at": _now(),
        }
        self._examples[example["id"]] = example
        self._datasets[dataset_id]["example_count"] += 1
        return example

    def _route_read(
        self, method: str, path: str, record: RecordedRequest
    ) -> tuple[int, Any] | None:
        """The read side: datasets, examples, projects and the runs query."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(record.path_query).query)
        req = _Read(method, path.strip("/").split("/"), query, record)
        try:
            return self._route_collection(req)
        except _ConflictError as exc:
            return 409, {"detail": str(exc)}
        except _NotFoundError as exc:
            return 404, {"detail": str(exc)}

    def _route_collection(self, req: _Read) -> tuple[int, Any] | None:
        routes = {
            "datasets": self._datasets_route,
            "examples": self._examples_route,
            "sessions": self._sessions_route,
        }
        if req.parts[0] in routes:
            return routes[req.parts[0]](req)
        if req.method == "POST" and req.parts == ["api", "v2", "runs", "query"]:
            return 200, self._query_runs_v2(req.body())
        return None

    def _datasets_route(self, req: _Read) -> tuple[int, Any] | None:
        if req.method == "POST" and len(req.parts) == 1:
            return 200, self._new_dataset(req.body())
        if req.method == "GET" and len(req.parts) == 2:
            found = self._datasets.get(req.parts[1])
            return (200, found) if found else (404, {"detail": "Not Found"})
        if req.method == "GET" and len(req.parts) == 1:
            name = req.one("name")
            return 200, [
                d for d in self._datasets.values() if name in (None, d["name"])
            ]
        return None

    def _examples_route(self, req: _Read) -> tuple[int, Any] | None:
        if req.method == "POST" and req.parts[1:] == ["bulk"]:
            return 200, [self._new_example(e) for e in req.body()]
        if req.method == "POST" and len(req.parts) == 1:
            return 200, self._new_example(req.body())
        if req.method == "GET" and len(req.parts) == 1:
            wanted = set(req.query.get("dataset", []))
            ids = set(req.query.get("id", []))
            rows = [
                e
                for e in self._examples.values()
                if (not wanted or e["dataset_id"] in wanted)
                and (not ids or e["id"] in ids)
            ]
            offset, limit = int(req.one("offset") or 0), int(req.one("limit") or 100)
            return 200, rows[offset : offset + limit]
        return None

    def _sessions_route(self, req: _Read) -> tuple[int, Any] | None:
        if req.method == "POST" and len(req.parts) == 1:
            body = req.body()
            session = {
                "id": str(body.get("id") or uuid.uuid4()),
                "name": body["name"],
                "description": body.get("description"),
                "reference_dataset_id": body.get("reference_dataset_id"),
                "start_time": body.get("start_time") or _now(),
                "extra": body.get("extra"),
                "tenant_id": str(uuid.UUID(int=0)),
            }
            if any(x["name"] == session["name"] for x in self._sessions.values()):
                raise _ConflictError(f"project {session['name']!r} exists")
            self._sessions[session["id"]] = session
            return 200, session
        if req.method == "GET" and len(req.parts) == 1:
            self._implicit_sessions()
            name = req.one("name")
            return 200, [
                x for x in self._sessions.values() if name in (None, x["name"])
            ]
        return None

    def _implicit_sessions(self) -> None:
        """Projects that runs were traced to without creating them (as LangSmith does).

        Each is created when its first run arrives, so its ``start_time`` (the
        project's creation) is that arrival, after the run itself started.
        """
        known = {x["name"] for x in self._sessions.values()}
        for run_id in self._order:
            name = self._merged(run_id).get("session_name")
            if name and name not in known:
                session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"session:{name}"))
                self._sessions[session_id] = {
                    "id": session_id,
                    "name": name,
                    "description": None,
                    "reference_dataset_id": None,
                    "start_time": self._arrived[run_id],
                    "extra": None,
                    "tenant_id": str(uuid.UUID(int=0)),
                }
                known.add(name)

    def _query_runs_v2(self, body: Any) -> dict[str, Any]:
        """``POST /api/v2/runs/query``: one page of the runs of some projects.

        The body is langsmith's ``RunQueryV2Params``; the answer is
        ``{"items": [...], "next_cursor": ...}``, each item holding only the
        ``selects`` fields (by default just ``id``) under their lower-case names,
        in arrival order. Runs are those of ``project_ids`` (required; an
        unknown one is a 404) started within ``[min_start_time,
        max_start_time]`` (by default the last day up to now), filtered by
        ``run_type`` (upper case, as the API spells it), ``trace_id``, ``ids``,
        ``is_root``, ``has_error`` and ``reference_examples``. ``page_size``
        (1-1000, default 100) bounds a page; ``next_cursor`` is set while more
        runs match, and the client sends it back as ``cursor``. Any other field
        (``filter``, ``trace_filter``, ``tree_filter``, ``ai_search``,
        ``reference_dataset_id``, ...) and any select outside ``_V2_FIELDS`` is
        refused with a 400, never answered wrongly.
        """
        query = _V2Query.parse(body)
        self._implicit_sessions()
        unknown = [p for p in query.project_ids if p not in self._sessions]
        if unknown:
            raise _NotFoundError(f"project(s) not found: {unknown}")
        names = {self._sessions[p]["name"]: p for p in query.project_ids}
        matched: list[tuple[int, Run, str]] = []
        for position in range(query.after, len(self._order)):
            run = self._merged(self._order[position])
            project = names.get(run.get("session_name")) or str(run.get("session_id"))
            if project in query.project_ids and query.matches(run):
                matched.append((position, run, project))
        page = matched[: query.page_size]
        items = [
            {
                select.lower(): _V2_FIELDS[select](
                    _V2Run(run, project, self._ancestors(run))
                )
                for select in query.selects
            }
            for _, run, project in page
        ]
        more = len(matched) > len(page)
        return {
            "items": copy.deepcopy(items),  # sent after the lock is released
            "next_cursor": _cursor(page[-1][0] + 1) if more else None,
        }

    def _ancestors(self, run: Run) -> list[str]:
        """The ids above ``run``, from its trace's root down to its parent."""
        if run["dotted_order"]:
            segments = str(run["dotted_order"]).split(".")
            return [segment.split("Z", 1)[1] for segment in segments[:-1]]
        chain: list[str] = []
        parent = run["parent_run_id"]
        while parent is not None and parent in self._arrived:
            chain.insert(0, parent)
            parent = self._merged(parent)["parent_run_id"]
        return chain

    def _ingest_multipart(self, content_type: str, body: bytes) -> list[str]:
        ops: dict[tuple[str, str], dict[str, Any]] = {}
        for name, payload in _parse_multipart(content_type, body):
            kind, _, rest = name.partition(".")
            if kind in ("post", "patch"):
                run_id, _, sub = rest.partition(".")
                op = ops.setdefault((kind, str(uuid.UUID(run_id))), {})
                if not sub:
                    op.update(cast("dict[str, Any]", _json(payload)))
                elif sub in _SUBPART_KEYS:
                    op[sub] = _json(payload)
                else:
                    raise ValueError(f"unknown run part {name!r}")
            elif kind == "attachment":
                run_id, _, attachment = rest.partition(".")
                self._attachments.setdefault(str(uuid.UUID(run_id)), {})[attachment] = (
                    payload
                )
            elif kind == "feedback":
                self._feedback.append(_json(payload))
            else:
                raise ValueError(f"unknown multipart part {name!r}")
        stored = []
        for (kind, run_id), op in ops.items():
            op["id"] = run_id
            stored.append(self._store(kind, op))
        return stored


@dataclass(frozen=True)
class _Read:
    """A request to the read side: its method, path parts, query and record."""

    method: str
    parts: list[str]
    query: dict[str, list[str]]
    record: RecordedRequest

    def one(self, key: str) -> str | None:
        """The query's first value of ``key``, or ``None``."""
        values = self.query.get(key)
        return values[0] if values else None

    def body(self) -> Any:
        """The request's JSON body."""
        return _json(self.record.body)


class _ConflictError(Exception):
    """A name that exists already (answered 409, as LangSmith does)."""


class _NotFoundError(Exception):
    """A project the request names that does not exist (answered 404)."""


# The ``RunQueryV2Params`` fields this receiver implements (the others: a 400).
_V2_QUERY_FIELDS = frozenset(
    {
        "project_ids", "selects", "page_size", "cursor", "min_start_time",
        "max_start_time", "run_type", "trace_id", "is_root", "has_error", "ids",
        "reference_examples",
    }
)  # fmt: skip
# langsmith's ``RunType``: the v2 API spells run types in upper case.
_V2_RUN_TYPES = frozenset(
    {"TOOL", "CHAIN", "LLM", "RETRIEVER", "EMBEDDING", "PROMPT", "PARSER"}
)


@dataclass(frozen=True)
class _V2Run:
    """A stored run with what the v2 API says of it besides its own fields."""

    run: Run
    project_id: str
    ancestors: list[str]


def _status(run: Run) -> str:
    if run["error"]:
        return "ERROR"
    return "SUCCESS" if run["end_time"] else "PENDING"


# The v2 ``selects`` this receiver answers (langsmith's ``RunSelectField``).
_V2_FIELDS: dict[str, Callable[[_V2Run], Any]] = {
    "ID": lambda r: r.run["id"],
    "NAME": lambda r: r.run["name"],
    "RUN_TYPE": lambda r: str(r.run["run_type"]).upper(),
    "STATUS": lambda r: _status(r.run),
    "START_TIME": lambda r: r.run["start_time"],
    "END_TIME": lambda r: r.run["end_time"],
    "ERROR": lambda r: r.run["error"],
    "EXTRA": lambda r: r.run["extra"],
    "METADATA": lambda r: (r.run["extra"] or {}).get("metadata"),
    "EVENTS": lambda r: r.run["events"],
    "INPUTS": lambda r: r.run["inputs"],
    "OUTPUTS": lambda r: r.run["outputs"],
    "PARENT_RUN_IDS": lambda r: r.ancestors,
    "PROJECT_ID": lambda r: r.project_id,
    "TRACE_ID": lambda r: r.run["trace_id"],
    "DOTTED_ORDER": lambda r: r.run["dotted_order"],
    "IS_ROOT": lambda r: r.run["parent_run_id"] is None,
    "REFERENCE_EXAMPLE_ID": lambda r: r.run.get("reference_example_id"),
    "TAGS": lambda r: r.run["tags"],
}


@dataclass(frozen=True)
class _V2Query:
    """A checked ``POST /api/v2/runs/query`` body."""

    project_ids: frozenset[str]
    selects: tuple[str, ...]
    page_size: int
    after: int
    since: datetime.datetime
    until: datetime.datetime
    equal: dict[str, Any]  # run field -> the value it must have
    ids: frozenset[str] | None
    reference_examples: frozenset[str] | None

    @classmethod
    def parse(cls, body: Any) -> _V2Query:
        """Check ``body`` field by field; a field this receiver lacks raises."""
        if not isinstance(body, dict):
            raise TypeError(f"runs query: the body is not an object: {body!r}")
        if extra := sorted(set(body) - _V2_QUERY_FIELDS):
            raise ValueError(f"runs query: {extra} not implemented by the receiver")
        if not body.get("project_ids"):
            raise ValueError("runs query: project_ids is required")
        selects = tuple(body.get("selects") or ["ID"])
        if bad := [s for s in selects if s not in _V2_FIELDS]:
            raise ValueError(f"runs query: selects {bad} not answered by the receiver")
        page_size = body.get("page_size", 100)
        if type(page_size) is not int or not 1 <= page_size <= 1000:
            raise ValueError(f"runs query: page_size must be 1..1000: {page_size!r}")
        run_type = body.get("run_type")
        if run_type is not None and run_type not in _V2_RUN_TYPES:
            raise ValueError(
                f"runs query: run_type {run_type!r} not in {sorted(_V2_RUN_TYPES)}"
            )
        now = datetime.datetime.now(datetime.UTC)
        equal: dict[str, Any] = {
            "run_type": None if run_type is None else run_type.lower(),
            "trace_id": _uuid(body["trace_id"]) if "trace_id" in body else None,
            "is_root": _flag(body, "is_root"),
            "has_error": _flag(body, "has_error"),
        }
        return cls(
            project_ids=frozenset(_uuid(p) for p in body["project_ids"]),
            selects=selects,
            page_size=page_size,
            after=_after(body["cursor"]) if "cursor" in body else 0,
            since=_time(body.get("min_start_time"), now - datetime.timedelta(days=1)),
            until=_time(body.get("max_start_time"), now),
            equal={k: v for k, v in equal.items() if v is not None},
            ids=_uuids(body, "ids"),
            reference_examples=_uuids(body, "reference_examples"),
        )

    def matches(self, run: Run) -> bool:
        """Whether ``run`` (of one of the projects) is in the query's answer."""
        started = run["start_time"]
        if started is None or not self.since <= _time(started) <= self.until:
            return False
        facts = {
            "run_type": run["run_type"],
            "trace_id": str(run["trace_id"]),
            "is_root": run["parent_run_id"] is None,
            "has_error": bool(run["error"]),
        }
        if any(facts[key] != value for key, value in self.equal.items()):
            return False
        if self.ids is not None and str(run["id"]) not in self.ids:
            return False
        example = str(run.get("reference_example_id"))
        return self.reference_examples is None or example in self.reference_examples


def _uuid(value: Any) -> str:
    """``value`` as a canonical UUID string (a malformed one raises: a 400)."""
    return str(uuid.UUID(str(value)))


def _uuids(body: Mapping[str, Any], key: str) -> frozenset[str] | None:
    return None if key not in body else frozenset(_uuid(v) for v in body[key])


def _flag(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"runs query: {key} must be a boolean: {value!r}")
    return value


def _time(value: Any, default: datetime.datetime | None = None) -> datetime.datetime:
    """An RFC 3339 time (naive ones are UTC), or ``default`` for ``None``."""
    if value is None and default is not None:
        return default
    parsed = datetime.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _cursor(position: int) -> str:
    """The opaque cursor of the page that starts at ``position`` of the arrivals."""
    return base64.urlsafe_b64encode(json.dumps({"after": position}).encode()).decode()


def _after(cursor: Any) -> int:
    """The position a cursor of ``_cursor`` stands for (any other raises: a 400)."""
    position = json.loads(base64.urlsafe_b64decode(str(cursor)))["after"]
    if type(position) is not int or position < 0:
        raise ValueError(f"runs query: not a cursor of this receiver: {cursor!r}")
    return position


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _sort_key(run: Run) -> tuple[str, str]:
    return (run["dotted_order"] or "", run["start_time"] or "")
