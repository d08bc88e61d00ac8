"""Command line: ``python -m langchain_cascade.local_models download|serve``.

The CLI, an application, makes SIGTERM stop the servers it serves (see
:func:`~langchain_cascade.local_models.server.sigterm_raises_systemexit`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING

from langchain_cascade.local_models.download import ensure_model
from langchain_cascade.local_models.registry import (
    CACHE_ENV_VAR,
    DEFAULT_MODEL_NAMES,
    MODELS,
)
from langchain_cascade.local_models.server import (
    LocalModels,
    log_tail,
    sigterm_raises_systemexit,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


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
        with sigterm_raises_systemexit(), models:
            for name in models.names:
                _echo(f"{name}\t{models.base_url(name)}")
            _echo("Serving; press Ctrl-C to stop.")
            while True:
                for name in models.names:
                    server = models.server(name)
                    if not server.is_running():
                        tail = log_tail(server.log_path) if server.log_path else ""
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
