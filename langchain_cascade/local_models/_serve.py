"""The model server subprocess: load one GGUF file into xllamacpp and serve it.

:class:`~langchain_cascade.local_models.server.LocalModelServer` runs this file as a
script (not with ``-m``): importing the package would import its ``__init__``
(langchain-core, ~0.6 s) and tie the server's start to every other module of the
package importing cleanly. So this file imports only the standard library at import
time, and ``xllamacpp`` once it serves.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LOOPBACK_HOST", "default_threads", "serve_main"]

LOOPBACK_HOST = "127.0.0.1"

_PR_SET_PDEATHSIG = 1


def default_threads() -> int:
    """Return the number of CPUs this process may use (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - non-Linux


def _echo(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent thread exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def serve_main(argv: Sequence[str]) -> int:
    """Serve until the parent closes the lifeline pipe (or forever without one).

    Args:
        argv: Command line arguments (see the parser below).

    Returns:
        1 when the server could not start; otherwise the process exits with 0.
    """
    parser = argparse.ArgumentParser(prog="local_models._serve")
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--host", default=LOOPBACK_HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--cache-ram-mib", type=int, default=1024)
    parser.add_argument("--kv-unified", action="store_true")
    parser.add_argument("--lifeline-fd", type=int, default=None)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--pdeathsig", action="store_true")
    parser.add_argument("--chat-template", default=None)
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
    if args.chat_template is not None:
        # A template file of the package's own (see ModelSpec.chat_template).
        params.chat_template = Path(args.chat_template).read_text(encoding="utf-8")
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


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
