"""A GGUF model run in-process by llama-cpp-python: ``llama:PATH`` or ``llama:ALIAS``.

Loaded models are kept in a module-level cache keyed by (path, n_ctx), so a turn costs
only the generation, and llama.cpp's KV cache can reuse the common prefix of successive
turns of one conversation.

One ``Llama`` object holds one KV cache, so only one stream may drive it at a time. A
stream owns the model from its start until it ends or is closed; the model lock is held
only around each step of llama's generator, never across a ``yield``, so a generator the
caller forgets (kept alive by a traceback, say) cannot deadlock the next turn. A new
stream on the same model instead takes ownership and closes the old one, and the old
one, if resumed, raises ``ProviderError`` instead of continuing from someone else's state.

Token usage (llama's streamed chunks carry none):

* input tokens are exact when the model is driven by its GGUF chat template (the case for
  the Qwen models): the prompt is rendered and tokenized exactly as llama-cpp's chat
  handler does. Otherwise it is an estimate: the message contents plus 4 tokens each.
* output tokens are the answer text re-tokenized, which equals the sampled count for
  ordinary text and, unlike counting chunks, is not thrown off by chunks that carry
  several tokens (multi-byte characters, text held back while matching a stop string).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbconvo._errors import (
    ConfigurationError,
    ContextWindowExceeded,
    ProviderError,
    StreamInterrupted,
)
from nbconvo._localmodel import resolve_llama_target
from nbconvo._parts import content_text
from nbconvo._settings import Settings, process_settings
from nbconvo._types import ChatRequest, Finish, Message, ProviderEvent, Usage
from nbconvo.providers._content import LLAMA_TEXT_ONLY, text_only

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

_PER_MESSAGE_OVERHEAD = 4  # role markers and separators of a typical chat template
_FINISH = {"stop": "stop", "length": "length"}
_MISSING = "llama-cpp-python is not installed: pip install 'nbconvo[local]'"


@dataclass
class _LoadedModel:
    llm: Llama
    formatter: Jinja2ChatFormatter | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    owner: object | None = None  # the token of the stream that currently drives llm
    active: Iterator[Any] | None = None  # that stream's llama iterator


_MODELS: dict[tuple[str, int], _LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ConfigurationError(_MISSING) from None
    return llama_cpp


def _make_formatter(llama_cpp: Any, llm: Llama) -> Jinja2ChatFormatter | None:
    """The formatter llama-cpp itself uses when the GGUF template drives the chat."""
    if llm.chat_handler is not None or llm.chat_format != "chat_template.default":
        return None
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None

    def token_text(token: int) -> str:
        if token < 0:
            return ""
        return llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    try:
        formatter: Jinja2ChatFormatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(llm.token_eos()),
            bos_token=token_text(llm.token_bos()),
        )
    except Exception:
        # A template we cannot compile only costs exact input counts, not the answer.
        return None
    return formatter


def _load(path: Path, n_ctx: int) -> _LoadedModel:
    key = (str(path.resolve()), n_ctx)
    with _LOAD_LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        llama_cpp = _import_llama()
        try:
            llm: Llama = llama_cpp.Llama(
                model_path=key[0],
                n_ctx=n_ctx,
                verbose=False,
                seed=llama_cpp.LLAMA_DEFAULT_SEED,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigurationError(
                f"llama-cpp could not load {path}: {exc} — is it a complete GGUF model?"
            ) from None
        loaded = _LoadedModel(llm=llm, formatter=_make_formatter(llama_cpp, llm))
        _MODELS[key] = loaded
        return loaded


@atexit.register
def _close_all() -> None:
    # Free the models while the interpreter is intact: llama-cpp's own __del__ fails with a
    # TypeError when it runs during interpreter teardown, after its module globals are gone.
    with _LOAD_LOCK:
        for loaded in _MODELS.values():
            with contextlib.suppress(Exception):
                loaded.llm.close()
        _MODELS.clear()


def _close_quietly(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


DEFAULT_MAX_TOKENS = 1024


class LlamaProvider:
    """In-process chat with a local GGUF model."""

    name = "llama"

    def __init__(
        self,
        *,
        prefix: str = "llama",
        model: str,
        base_url: str | None = None,
        n_ctx: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        if base_url:
            raise ConfigurationError(
                "llama: runs the model in-process and takes no --base-url; "
                "for a llama.cpp server use llamacpp:MODEL --base-url URL"
            )
        settings = settings if settings is not None else process_settings()
        _import_llama()  # fail at `%convo model`, not at the first turn
        self.prefix = prefix
        self.model = model
        self.path = resolve_llama_target(model)
        self.n_ctx = n_ctx if n_ctx is not None else settings.llama_n_ctx

    @property
    def label(self) -> str:
        return f"{self.prefix}:{self.model}"

    @property
    def context_window(self) -> int:
        return self.n_ctx

    def load(self) -> None:
        """Load the model now (``stream`` does it on first use)."""
        _load(self.path, self.n_ctx)

    def count_prompt_tokens(self, messages: list[Message]) -> int:
        """Tokens of the prompt llama will see for ``messages`` (see the module docstring)."""
        loaded = _load(self.path, self.n_ctx)
        with loaded.lock:
            return self._count_prompt(loaded, messages)

    @staticmethod
    def _count_prompt(loaded: _LoadedModel, messages: list[Message]) -> int:
        llm = loaded.llm
        if loaded.formatter is not None:
            try:
                # Our Message is one of the shapes llama's message union allows.
                rendered = loaded.formatter(messages=messages)  # type: ignore[arg-type]
            except Exception:
                rendered = None
            if rendered is not None:
                tokens = llm.tokenize(
                    rendered.prompt.encode("utf-8"),
                    add_bos=not rendered.added_special,
                    special=True,
                )
                return len(tokens)
        text = "\n".join(content_text(m["content"]) for m in messages)
        content = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return len(content) + _PER_MESSAGE_OVERHEAD * len(messages)

    def _too_long(self, prompt_tokens: int) -> ContextWindowExceeded:
        return ContextWindowExceeded(
            f"{self.label}: the prompt is {prompt_tokens} tokens and the window is "
            f"{self.n_ctx}: try `%convo compact` or set NBCONVO_LLAMA_N_CTX higher"
        )

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        messages = request.all_messages()
        text_only(messages, self.label, LLAMA_TEXT_ONLY)
        loaded = _load(self.path, self.n_ctx)
        llm = loaded.llm
        kwargs: dict[str, Any] = {"messages": messages, "stream": True}
        if request.temperature is not None:  # else llama's own default
            kwargs["temperature"] = request.temperature
        # Small local models can repeat themselves until the window is full: cap an answer
        # at DEFAULT_MAX_TOKENS unless the turn asks for another limit.
        kwargs["max_tokens"] = request.max_tokens or DEFAULT_MAX_TOKENS
        if request.seed is not None:
            kwargs["seed"] = request.seed

        token = object()
        with loaded.lock:
            prompt_tokens = self._count_prompt(loaded, messages)
            if prompt_tokens >= self.n_ctx:
                raise self._too_long(prompt_tokens)
            if loaded.active is not None:
                # A stream left suspended, never closed: it loses the model to this one.
                _close_quietly(loaded.active)
            if request.seed is not None:
                # Reusing the KV cache of the previous turn evaluates the prompt in other
                # batches than a fresh load does, and those float differences change what
                # a seeded sampler picks. A seed asks for repeatable answers (also in a new
                # kernel), so pay for evaluating the whole prompt again.
                llm.reset()  # type: ignore[no-untyped-call]
            try:
                inner: Iterator[Any] = iter(llm.create_chat_completion(**kwargs))
            except Exception as exc:
                raise ProviderError(f"{self.label} failed to start: {exc}") from None
            loaded.owner, loaded.active = token, inner

        parts: list[str] = []
        try:
            while True:
                with loaded.lock:
                    if loaded.owner is not token:
                        raise StreamInterrupted(
                            f"{self.label}: a newer request took over the model mid-answer",
                            partial="".join(parts),
                        )
                    try:
                        chunk = next(inner)
                    except StopIteration:
                        break
                    except BaseException as exc:
                        # Interrupted inside llama's bookkeeping (e.g. KeyboardInterrupt
                        # between a decode and its counters): its view of the KV cache
                        # may be off, so forget it; the next turn re-reads the prompt.
                        with contextlib.suppress(Exception):
                            llm.reset()  # type: ignore[no-untyped-call]
                        if not isinstance(exc, Exception):
                            raise
                        raise self._failure(exc, prompt_tokens, "".join(parts)) from None
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        parts.append(content)
                        yield content
                    reason = choice.get("finish_reason")
                    if reason:
                        yield Finish(_FINISH.get(reason, "other"))
        finally:
            with loaded.lock:
                if loaded.owner is token:
                    loaded.owner, loaded.active = None, None
                    # Closing at a yield point leaves llama's state consistent: the next
                    # request re-matches its prompt against the evaluated tokens.
                    _close_quietly(inner)

        answer = "".join(parts)
        with loaded.lock:
            output_tokens = (
                len(llm.tokenize(answer.encode("utf-8"), add_bos=False, special=True))
                if answer
                else 0
            )
        yield Usage(prompt_tokens, output_tokens)

    def _failure(self, exc: Exception, prompt_tokens: int, partial: str) -> Exception:
        message = str(exc)
        if "exceed context window" in message:
            return self._too_long(prompt_tokens)
        if partial:
            return StreamInterrupted(f"{self.label} failed mid-answer: {message}", partial=partial)
        return ProviderError(f"{self.label} failed: {message}")
