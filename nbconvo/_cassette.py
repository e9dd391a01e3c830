"""Replay cassettes: deterministic, keyless reruns.

A cassette is a JSON Lines file: a header line, then one line per request, keyed by a
hash of the canonical request (provider, model, parameters, system text, messages) and
holding the stream of provider events it produced. Replay yields those events into the
same code path as a live stream (the same collecting, display and recording), so a
replayed notebook shows exactly what the recorded one showed. Headers and keys are never
part of a request, so they never reach a cassette.

Modes: ``record`` calls the provider and stores every answer; ``replay`` only reads (a miss
is an error naming the turn); ``auto`` replays hits and records misses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from nbconvo._document import write_atomic
from nbconvo._errors import PersistenceError, ReplayMiss, UsageError
from nbconvo._parts import ToolCallPart, ToolResultPart, content_text, content_to_json
from nbconvo._types import ChatRequest, Finish, Notice, ProviderEvent, ToolSpec, Usage
from nbconvo.providers import Provider

Mode = Literal["record", "replay", "auto"]
MODES: tuple[Mode, ...] = ("record", "replay", "auto")
HEADER = "nbconvo-cassette"
VERSION = 1


def canonical_request(request: ChatRequest) -> dict[str, Any]:
    """The request as it is keyed: what the model was asked, never how long a tool took.
    Tools and a schema appear only when set, so keys of earlier cassettes still match."""
    out: dict[str, Any] = {
        "provider": request.provider,
        "model": request.model,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "system": request.system,
        "messages": [
            {"role": m["role"], "content": _timeless(content_to_json(m["content"]))}
            for m in request.messages
        ],
    }
    if request.tools:
        out["tools"] = [t.to_json() for t in request.tools]
    if request.schema is not None:
        out["schema"] = request.schema.to_json()
    if request.effort is not None:
        out["effort"] = request.effort
    return out


def _timeless(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [{k: v for k, v in p.items() if k != "seconds"} for p in content]


def request_key(request: ChatRequest) -> str:
    text = json.dumps(
        canonical_request(request), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _event_to_json(event: ProviderEvent) -> dict[str, Any]:
    if isinstance(event, str):
        return {"text": event, "kind": "text"}
    data = asdict(event)
    if isinstance(event, ToolCallPart) and event.signature is None:
        del data["signature"]
    if isinstance(event, Usage):  # the cache figures only when there are some: stable files
        for key in ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens"):
            if not data[key]:
                del data[key]
    return data


def _event_from_json(data: dict[str, Any]) -> ProviderEvent:
    kind = data.get("kind")
    if kind == "text":
        return str(data["text"])
    if kind == "usage":
        return Usage(
            int(data["input_tokens"]),
            int(data["output_tokens"]),
            int(data.get("cached_input_tokens", 0)),
            int(data.get("cache_write_tokens", 0)),
            int(data.get("reasoning_tokens", 0)),
        )
    if kind == "finish":
        return Finish(str(data["reason"]), data.get("notice"))
    if kind == "notice":
        return Notice(str(data["text"]))
    if kind == "tool_call":
        signature = data.get("signature")
        return ToolCallPart(
            str(data["call_id"]),
            str(data["name"]),
            str(data["arguments"]),
            str(signature) if signature else None,
        )
    raise ValueError(f"unknown event kind {kind!r}")


class Cassette:
    def __init__(self, path: Path, mode: Mode, notebook: str | None = None) -> None:
        if mode not in MODES:
            raise UsageError(f"unknown cassette mode {mode!r}: use record, replay or auto")
        self.path = path
        self.mode = mode
        self.notebook = notebook
        self.entries: dict[str, dict[str, Any]] = {}
        self._lines: dict[str, str] = {}  # each entry serialized once, not at every save
        self.windows: dict[str, int] = {}
        self.hits = 0
        self.recorded = 0
        if path.exists():
            self._load()
        elif mode == "replay":
            raise PersistenceError(
                f"no cassette at {path}: record one first with `--mode record` or `--mode auto`"
            )

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise PersistenceError(f"cannot read cassette {self.path}: {error}") from None
        header: dict[str, Any] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if number == 1:
                    if data.get("format") != HEADER:
                        raise ValueError("not an nbconvo cassette header")
                    if int(data.get("version", 0)) > VERSION:
                        raise PersistenceError(
                            f"cassette {self.path} was written by a newer nbconvo (version "
                            f"{data['version']}): upgrade nbconvo to replay it"
                        )
                    header = data
                    continue
                for event in data["events"]:
                    _event_from_json(event)
                self.entries[str(data["key"])] = data
                self._lines[str(data["key"])] = line
            except PersistenceError:
                raise
            except Exception as error:
                raise PersistenceError(
                    f"line {number} of cassette {self.path} is truncated or corrupt "
                    f"({type(error).__name__}): re-record it with `--mode record`; "
                    "nothing was replayed"
                ) from None
        recorded_for = header.get("notebook")
        if self.notebook and recorded_for and recorded_for != self.notebook:
            raise PersistenceError(
                f"cassette {self.path} was recorded for notebook {recorded_for!r}, not "
                f"{self.notebook!r}: point NBCONVO_CASSETTE at this notebook's cassette"
            )
        if not self.notebook:
            self.notebook = recorded_for
        self.windows = {str(k): int(v) for k, v in (header.get("windows") or {}).items()}

    def lookup(self, request: ChatRequest) -> list[ProviderEvent] | None:
        entry = self.entries.get(request_key(request))
        if entry is None:
            return None
        return [_event_from_json(e) for e in entry["events"]]

    def result(self, request: ChatRequest, call_id: str) -> ToolResultPart | None:
        """The recorded result of a call the answer to ``request`` made, if any."""
        entry = self.entries.get(request_key(request))
        data = (entry or {}).get("results", {}).get(call_id)
        if not isinstance(data, dict):
            return None
        return ToolResultPart(
            call_id,
            str(data.get("content", "")),
            bool(data.get("is_error", False)),
            str(data.get("name", "")),
            float(data.get("seconds", 0.0)),
        )

    def record_result(self, request: ChatRequest, result: ToolResultPart) -> None:
        """Keep a call's result with the answer that made the call, so a replay gives it
        without running the function."""
        key = request_key(request)
        entry = self.entries.get(key)
        if entry is None:
            return  # the answer itself was not recorded (a failed stream): nothing to pair
        entry.setdefault("results", {})[result.call_id] = {
            "content": result.content,
            "is_error": result.is_error,
            "name": result.name,
            "seconds": result.seconds,  # as it was, so a replay shows the same line
        }
        self._lines[key] = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        self.save()

    def tool_spec(self, name: str) -> ToolSpec | None:
        """The definition of tool ``name`` as a recorded request offered it (for a replay in
        a kernel where the function is gone)."""
        for entry in reversed(list(self.entries.values())):
            for data in entry.get("request", {}).get("tools") or ():
                if isinstance(data, dict) and data.get("name") == name:
                    return ToolSpec(name, str(data.get("description", "")), data["parameters"])
        return None

    def record(self, request: ChatRequest, events: list[ProviderEvent]) -> None:
        key = request_key(request)
        entry = {  # a re-recording replaces the entry in place: stable files
            "key": key,
            "request": canonical_request(request),
            "events": [_event_to_json(e) for e in events],
        }
        self.entries[key] = entry
        self._lines[key] = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        self.recorded += 1
        self.save()

    def save(self) -> None:
        header = {
            "format": HEADER,
            "version": VERSION,
            "notebook": self.notebook,
            "windows": dict(sorted(self.windows.items())),
        }
        lines = [json.dumps(header, ensure_ascii=False), *self._lines.values()]
        write_atomic(self.path, "\n".join(lines) + "\n")

    def describe(self) -> str:
        return f"{self.path} ({self.mode}, {len(self.entries)} recorded answers)"


class CassetteProvider:
    """Wraps a provider: answers from the cassette, or records what the provider says.
    The real provider is only created when a request must really be sent, so replay
    needs no key and no model."""

    def __init__(self, spec: str, factory: Callable[[], Provider], cassette: Cassette) -> None:
        self.spec = spec
        self.name = spec.partition(":")[0]
        self._factory = factory
        self._inner: Provider | None = None
        self.cassette = cassette

    def inner(self) -> Provider:
        if self._inner is None:
            self._inner = self._factory()
            window = getattr(self._inner, "context_window", None)
            if isinstance(window, int) and window > 0:
                self.cassette.windows[self.spec] = window
        return self._inner

    @property
    def context_window(self) -> int | None:
        if self._inner is not None:
            window = getattr(self._inner, "context_window", None)
            return window if isinstance(window, int) else None
        return self.cassette.windows.get(self.spec)

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        mode = self.cassette.mode
        if mode in ("replay", "auto"):
            events = self.cassette.lookup(request)
            if events is not None:
                self.cassette.hits += 1
                yield from events
                return
            if mode == "replay":
                self.inner()  # a missing key or unknown model says so, as it would live
                turn = sum(1 for m in request.messages if m["role"] == "user")
                prompt = " ".join(content_text(request.messages[-1]["content"]).split())[:50]
                raise ReplayMiss(
                    f"cassette {self.cassette.path} has no answer for turn {turn} "
                    f"({prompt!r}, {self.spec}): record it with `--mode auto` or `--mode record`"
                )
        recorded: list[ProviderEvent] = []
        for event in self.inner().stream(request):
            recorded.append(event)
            yield event
        self.cassette.record(request, recorded)  # only complete answers are recorded
