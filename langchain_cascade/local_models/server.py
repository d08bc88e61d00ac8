"""Serve local models: one xllamacpp server subprocess per model, bound to loopback.

Library code here installs no signal handler. A server is stopped by
:meth:`LocalModelServer.stop`, by leaving its ``with`` block, at interpreter exit
(``atexit``), and when this process dies however it dies: the child watches a pipe
whose write end only this process holds, and on Linux it also asks for SIGTERM when
its parent thread exits. An application that wants SIGTERM to unwind its ``with``
blocks (the CLI, the test fixture) opts in with :func:`sigterm_raises_systemexit`.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from langchain_cascade.local_models import _serve
from langchain_cascade.local_models._serve import LOOPBACK_HOST, default_threads
from langchain_cascade.local_models.download import ensure_model, output_tail
from langchain_cascade.local_models.registry import (
    DEFAULT_MODEL_NAMES,
    ModelSpec,
    StrPath,
    get_model_spec,
    resolve_cache_dir,
)

if TYPE_CHECKING:
    import types
    from collections.abc import Iterator, Sequence

    from langchain_openai import ChatOpenAI

__all__ = [
    "LOOPBACK_HOST",
    "LocalModelServer",
    "LocalModels",
    "find_free_port",
    "log_tail",
    "sigterm_raises_systemexit",
]

logger = logging.getLogger(__name__)

_BIND_ERROR_MARKER = "couldn't bind"
_LOG_RETENTION_SECONDS = 7 * 24 * 3600
_MAX_BIND_ATTEMPTS = 3
_HTTP_OK = 200


def find_free_port(host: str = LOOPBACK_HOST) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    Args:
        host: Interface address to probe.

    Returns:
        A port number picked by the kernel (binding port 0).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _http_status(url: str, timeout: float) -> int | None:
    """Return the HTTP status of ``GET url`` (no proxies), or None if unreachable."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return None


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rpartition(")")[2].split()[:1]
    return state not in (["Z"], ["X"])


def log_tail(path: Path, max_bytes: int = 8192, lines: int = 30) -> str:
    """Return the last lines of a server log (or why it could not be read).

    Args:
        path: The log file.
        max_bytes: How much of the file's end to read.
        lines: How many lines to keep.

    Returns:
        The tail, ``<empty log>``, or ``<could not read ...>``.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            data = handle.read()
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    return output_tail(data.decode("utf-8", errors="replace"), lines) or "<empty log>"


def _prune_old_logs(log_dir: Path) -> None:
    cutoff = time.time() - _LOG_RETENTION_SECONDS
    for log in log_dir.glob("*.log"):
        with contextlib.suppress(OSError):
            if log.stat().st_mtime < cutoff:
                log.unlink()


# The server subprocess runs this file as a script rather than with ``-m``: importing
# the package would import its __init__ (langchain-core, ~0.6 s) and tie the server's
# start to every other module of the package importing cleanly.
# See _serve's docstring for why the child runs that file as a script.
_CHILD_BOOTSTRAP = (
    "import runpy, sys; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
SERVE_SCRIPT = Path(_serve.__file__).resolve()
"""The file the server subprocess runs."""


_RUNNING_LOCK = threading.RLock()
_RUNNING: set[LocalModelServer] = set()
_ATEXIT_REGISTERED = threading.Event()


def _stop_all_servers() -> None:
    """Stop every server this process started and has not stopped yet."""
    with _RUNNING_LOCK:
        servers = list(_RUNNING)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


def _register_atexit() -> None:
    """Register the atexit cleanup once (no signal handler: see the module doc)."""
    with _RUNNING_LOCK:
        if not _ATEXIT_REGISTERED.is_set():
            _ATEXIT_REGISTERED.set()
            atexit.register(_stop_all_servers)


def _raise_systemexit(signum: int, _frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_raises_systemexit() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)`` in the main thread.

    SIGINT already raises ``KeyboardInterrupt``, which unwinds ``with`` blocks (so
    servers stop) and runs atexit; SIGTERM's default action skips both. For use by
    applications (the CLI, the test fixture), never by library code. The previous
    handler is restored on exit. Outside the main thread this does nothing.

    Yields:
        Nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_systemexit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LocalModelServer:
    """One xllamacpp (llama.cpp) OpenAI-compatible server for one model (subprocess).

    The server listens on ``127.0.0.1`` only, on a free port. Its output goes to a log
    file under ``<cache_dir>/logs``. It is stopped by :meth:`stop`, by leaving the
    ``with`` block, at interpreter exit, and when this process dies: the child watches
    a pipe whose write end only this process holds, and on Linux it also asks for
    SIGTERM when its parent thread exits (only when started from the main thread,
    because that signal is tied to the spawning thread).

    Example::

        with LocalModelServer("smollm2-135m") as server:
            chat = server.chat_model(temperature=0)
    """

    def __init__(
        self,
        model: str | ModelSpec,
        *,
        model_path: StrPath | None = None,
        cache_dir: StrPath | None = None,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: int | None = None,
        kv_unified: bool = True,
        cache_ram_mib: int = 1024,
        startup_timeout: float = 120.0,
    ) -> None:
        """Configure (but do not start) a server.

        Args:
            model: Registered alias or :class:`ModelSpec`; its name is the API model id.
            model_path: Use this GGUF file instead of :func:`ensure_model`'s.
            cache_dir: Model cache directory (also holds ``logs/``).
            n_ctx: Context size in tokens.
            n_parallel: Number of request slots processed concurrently.
            n_threads: CPU threads for generation and prompt processing; defaults to the
                number of CPUs this process may use.
            kv_unified: Share one KV cache between slots so each request can use the
                full ``n_ctx`` (otherwise each slot gets ``n_ctx / n_parallel``).
            cache_ram_mib: Cap of llama.cpp's host-RAM prompt cache (its default is
                8192 MiB per server).
            startup_timeout: Seconds to wait for ``GET /health`` to return 200.
        """
        self.spec = get_model_spec(model)
        self.cache_dir = resolve_cache_dir(cache_dir)
        self._model_path = (
            Path(model_path).resolve() if model_path is not None else None
        )
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads if n_threads is not None else default_threads()
        self.kv_unified = kv_unified
        self.cache_ram_mib = cache_ram_mib
        self.startup_timeout = startup_timeout
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._port: int | None = None
        self._log_path: Path | None = None
        self._attempts = 0
        self._ready = False

    def __repr__(self) -> str:
        """Describe the model, port and state."""
        state = "ready" if self._ready else ("starting" if self._process else "stopped")
        return f"LocalModelServer({self.name!r}, port={self._port}, {state})"

    @property
    def name(self) -> str:
        """The model alias, also the ``model`` id the server answers to."""
        return self.spec.name

    @property
    def pid(self) -> int | None:
        """Process id of the server subprocess, or None if not started."""
        return self._process.pid if self._process is not None else None

    @property
    def port(self) -> int:
        """The TCP port the server listens on.

        Raises:
            RuntimeError: If the server has not been started.
        """
        if self._port is None:
            msg = f"Local model server {self.name!r} is not started"
            raise RuntimeError(msg)
        return self._port

    @property
    def url(self) -> str:
        """Root URL of the server, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, e.g. ``http://127.0.0.1:40123/v1``."""
        return f"{self.url}/v1"

    @property
    def log_path(self) -> Path | None:
        """The log file of the current (or last) server process."""
        return self._log_path

    @property
    def model_path(self) -> Path | None:
        """The GGUF file served (known once started or when given explicitly)."""
        return self._model_path

    def is_running(self) -> bool:
        """Whether the server subprocess is alive (it may still be loading)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Ensure the model file, start the subprocess and wait until it is healthy.

        Returns:
            This server.

        Raises:
            RuntimeError: If the model cannot be obtained or the server does not become
                healthy within ``startup_timeout`` (the message ends with the log tail).
        """
        with self._lock:
            if self._ready and self.is_running():
                return self
            try:
                self._spawn()
                self._wait_ready(time.monotonic() + self.startup_timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def _command(
        self, model_path: Path, port: int, *, pdeathsig: bool, lifeline: int
    ) -> list[str]:
        command = [
            sys.executable,
            "-c",
            _CHILD_BOOTSTRAP,
            str(SERVE_SCRIPT),
            "--model",
            str(model_path),
            "--alias",
            self.name,
            "--host",
            LOOPBACK_HOST,
            "--port",
            str(port),
            "--n-ctx",
            str(self.n_ctx),
            "--n-parallel",
            str(self.n_parallel),
            "--threads",
            str(self.n_threads),
            "--cache-ram-mib",
            str(self.cache_ram_mib),
            "--lifeline-fd",
            str(lifeline),
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.kv_unified:
            command.append("--kv-unified")
        if (template := self.spec.chat_template_path) is not None:
            command += ["--chat-template", str(template)]
        if pdeathsig:
            command.append("--pdeathsig")
        return command

    def _spawn(self) -> None:
        """Start the subprocess on a fresh free port without waiting for it."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                msg = f"Local model server {self.name!r} is already running"
                raise RuntimeError(msg)
            self._release()
            if self._model_path is None:
                self._model_path = ensure_model(self.spec, self.cache_dir)
            log_dir = self.cache_dir / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            _prune_old_logs(log_dir)
            port = find_free_port(LOOPBACK_HOST)
            log_path = log_dir / f"{self.name}.{port}.log"
            read_fd, write_fd = os.pipe()
            try:
                command = self._command(
                    self._model_path,
                    port,
                    pdeathsig=threading.current_thread() is threading.main_thread(),
                    lifeline=read_fd,
                )
                with log_path.open("wb") as log:
                    log.write(f"$ {' '.join(command)}\n".encode())
                    log.flush()
                    process = subprocess.Popen(  # noqa: S603 - fixed argv
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        pass_fds=(read_fd,),
                        close_fds=True,
                        start_new_session=True,
                    )
            except BaseException:
                os.close(write_fd)
                raise
            finally:
                os.close(read_fd)
            self._process = process
            self._lifeline = write_fd
            self._port = port
            self._log_path = log_path
            self._attempts += 1
            with _RUNNING_LOCK:
                _RUNNING.add(self)
            _register_atexit()
            logger.info(
                "Started %s server pid %d on %s (log %s)",
                self.name,
                process.pid,
                self.url,
                log_path,
            )

    def _wait_ready(self, deadline: float) -> None:
        """Poll ``/health`` until it returns 200; respawn on a port clash."""
        while True:
            process = self._process
            if process is None:
                msg = f"Local model server {self.name!r} is not started"
                raise RuntimeError(msg)
            if _http_status(f"{self.url}/health", timeout=2.0) == _HTTP_OK:
                self._ready = True
                return
            code = process.poll()
            if code is not None:
                log_path = self._log_path
                tail = log_tail(log_path) if log_path is not None else "<no log>"
                if _BIND_ERROR_MARKER in tail and self._attempts < _MAX_BIND_ATTEMPTS:
                    logger.warning(
                        "Port %s was taken; restarting %s", self._port, self.name
                    )
                    self._spawn()
                    continue
                msg = (
                    f"Local model server {self.name!r} exited with code {code} before "
                    f"becoming healthy (log: {log_path}). Last log lines:\n{tail}"
                )
                raise RuntimeError(msg)
            if time.monotonic() >= deadline:
                log_path = self._log_path
                tail = log_tail(log_path) if log_path is not None else "<no log>"
                msg = (
                    f"Local model server {self.name!r} did not answer 200 on "
                    f"{self.url}/health within {self.startup_timeout:.0f} s "
                    f"(log: {log_path}). Last log lines:\n{tail}"
                )
                raise RuntimeError(msg)
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, SIGKILL after ``timeout`` seconds, then reap it.

        Safe to call repeatedly and on a server that never started.

        Args:
            timeout: Seconds to wait after SIGTERM before SIGKILL.
        """
        with self._lock:
            process = self._process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)  # own session: pgid == pid
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("Killing %s server pid %d", self.name, process.pid)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            self._release()
            self._ready = False
            self._attempts = 0

    def _release(self) -> None:
        """Forget a finished process (reaping it) and close the lifeline pipe."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None
        if self._lifeline is not None:
            with contextlib.suppress(OSError):
                os.close(self._lifeline)
            self._lifeline = None
        if self._process is None:
            with _RUNNING_LOCK:
                _RUNNING.discard(self)

    def chat_model(self, **kwargs: Any) -> ChatOpenAI:
        """Return a ``ChatOpenAI`` talking to this server.

        Args:
            **kwargs: Extra ``ChatOpenAI`` arguments (``temperature``, ``max_tokens``,
                ``logprobs``...); they may also override the defaults.

        Returns:
            A chat model with ``base_url``, ``api_key="local"`` and ``model`` preset.
        """
        return _chat_openai(self.base_url, self.name, **kwargs)

    def __enter__(self) -> Self:
        """Start (see :meth:`start`)."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop (see :meth:`stop`), also when the block raised."""
        self.stop()


def _chat_openai(base_url: str, model: str, **kwargs: Any) -> ChatOpenAI:
    try:
        from langchain_openai import ChatOpenAI  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        msg = (
            "LocalModels.chat_model() needs the langchain-openai package; install the "
            "`local` extra: pip install -e '.[local]' from a checkout"
        )
        raise ImportError(msg) from exc
    params: dict[str, Any] = {"base_url": base_url, "api_key": "local", "model": model}
    params.update(kwargs)
    return ChatOpenAI(**params)


class LocalModels:
    """Serve several local models at once, one server process per model.

    Example::

        with LocalModels(["smollm2-135m", "qwen2.5-coder-0.5b"]) as lm:
            chat = lm.chat_model("qwen2.5-coder-0.5b", temperature=0, max_tokens=64)
    """

    def __init__(
        self,
        names: Sequence[str] | None = None,
        *,
        cache_dir: StrPath | None = None,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: int | None = None,
        kv_unified: bool = True,
        startup_timeout: float = 180.0,
    ) -> None:
        """Configure (but do not start) the servers.

        Args:
            names: Model aliases to serve; all known models when None.
            cache_dir: Model cache directory.
            n_ctx: Context size per server.
            n_parallel: Concurrent request slots per server.
            n_threads: CPU threads per server (default: CPUs available). When
                servers compute at once (speculative mode, concurrent calls),
                give each ``cores / servers``: with more threads than cores,
                llama.cpp's threads wait on each other and calls stall.
            kv_unified: One KV cache shared by the slots (each request may use
                the full ``n_ctx``). ``False`` gives each slot ``n_ctx /
                n_parallel`` and a prompt cache of its own, which callers pinned
                to separate slots (``id_slot``) keep between requests.
            startup_timeout: Seconds allowed for all servers to become healthy.

        Raises:
            ValueError: If a name is unknown or ``names`` is empty.
        """
        chosen = list(dict.fromkeys(DEFAULT_MODEL_NAMES if names is None else names))
        if not chosen:
            msg = "LocalModels needs at least one model name"
            raise ValueError(msg)
        self.startup_timeout = startup_timeout
        self._servers: dict[str, LocalModelServer] = {
            name: LocalModelServer(
                name,
                cache_dir=cache_dir,
                n_ctx=n_ctx,
                n_parallel=n_parallel,
                n_threads=n_threads,
                kv_unified=kv_unified,
                startup_timeout=startup_timeout,
            )
            for name in chosen
        }

    def __repr__(self) -> str:
        """Describe the servers."""
        return f"LocalModels({list(self._servers.values())!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """The served model aliases, in the order given."""
        return tuple(self._servers)

    def start(self) -> Self:
        """Download missing models, start all servers, wait until all are healthy.

        Models are fetched one after the other; servers load concurrently.

        Returns:
            This object.

        Raises:
            RuntimeError: If a model or a server fails; every server is stopped then.
        """
        try:
            for server in self._servers.values():
                if not server.is_running():
                    server._spawn()
            deadline = time.monotonic() + self.startup_timeout
            for server in self._servers.values():
                server._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server (idempotent)."""
        for server in self._servers.values():
            server.stop()

    def server(self, name: str) -> LocalModelServer:
        """Return the server of a model.

        Raises:
            KeyError: If ``name`` is not one of :attr:`names`.
        """
        try:
            return self._servers[name]
        except KeyError:
            msg = (
                f"Model {name!r} is not served here; served: {', '.join(self._servers)}"
            )
            raise KeyError(msg) from None

    def base_url(self, name: str) -> str:
        """OpenAI-compatible base URL of a model's server (``http://127.0.0.1:PORT/v1``)."""
        return self.server(name).base_url

    def chat_model(self, name: str, **kwargs: Any) -> ChatOpenAI:
        """Return a ``langchain_openai.ChatOpenAI`` for a served model.

        Args:
            name: Model alias.
            **kwargs: Extra ``ChatOpenAI`` arguments, e.g. ``temperature=0``,
                ``max_tokens=64``, ``logprobs=True``.

        Returns:
            The chat model.

        Raises:
            ImportError: If langchain-openai is not installed (the ``local`` extra).
        """
        return self.server(name).chat_model(**kwargs)

    def __enter__(self) -> Self:
        """Start (see :meth:`start`)."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop (see :meth:`stop`), also when the block raised."""
        self.stop()
