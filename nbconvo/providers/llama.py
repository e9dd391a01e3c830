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

States by prefix (issue #19). llama-cpp reuses the evaluated prefix its KV cache shares
with the new prompt, so a linear dialogue only evaluates each new turn. A branch switch,
a rerun or Run All leaves that path, and everything after the fork point would be
evaluated again. So, before a prompt leaves the evaluated path, the model's state
(``Llama.save_state``: its KV cache and tokens) is kept in a ``LlamaRAMCache`` keyed by
the evaluated tokens, and a prompt resumes from the kept state sharing its longest prefix
(``Llama.load_state``), when that is longer than what the KV cache holds. The states
are kept up to ``Settings.local_cache_mb`` MB, the least recently used let go first (before
a new one is saved, so the budget holds at every moment); a state whose tokens are a
prefix of a newer one's is let go (the newer one holds it). llama.cpp writes a state once,
into the buffer kept, and reads it back in place (``save_state``, ``load_state``):
llama-cpp's own methods pass it through three copies.
llama-cpp's own use of its cache (``Llama.set_cache``) is not used: it copies a state
after every completion even when the next turn extends it, it cannot say how much of a
prompt it reused, and its states carry a copy of the logits buffer (n_batch × n_vocab
floats: 311 MB for Qwen2.5) that its size limit does not count; the model's logits
buffer is cut to one row here instead (only ``logits_all`` models read it). The usage
reports the prompt tokens reused, not evaluated, as ``cached_input_tokens``. A prompt's
last token is always evaluated alone (``evaluate_all_but_last``), so a rerun at
temperature 0 answers as the first run did. A seeded request still evaluates its whole
prompt afresh, so a seed repeats its answer in any kernel. A kept state holds the path
as it was computed; without it, the path is evaluated again from the fork point, in
other batches, which may differ in the last bits: at temperature 0 the answers with and
without kept states were the same in tests/integration/test_local_cache.py and in
bench/bench_local_cache.py.

Token usage (llama's streamed chunks carry none):

* input tokens are exact when the model is driven by its GGUF chat template (the case for
  the Qwen models): the prompt is rendered and tokenized exactly as llama-cpp's chat
  handler does. Otherwise it is an estimate: the message contents plus 4 tokens each.
* output tokens are the answer text re-tokenized, which equals the sampled count for
  ordinary text and, unlike counting chunks, is not thrown off by chunks that carry
  several tokens (multi-byte characters, text held back while matching a stop string).

Tools: the request's tools go to the GGUF chat template (``tools=``), which describes them
to the model (Qwen2.5's asks for ``<tool_call>{"name": …, "arguments": …}</tool_call>``
blocks); a model whose template has no tools is refused before anything is generated.
The calls are parsed out of the streamed text (``ToolCallText``): the markup is never
shown as answer text. Small models often write the call without the tags, as the whole
answer (a JSON object naming an offered tool, bare or in a ```json fence): that counts as
a call too. Earlier calls and their results go back in the shapes the template renders
(an assistant's ``tool_calls``, ``tool`` messages).

A structured answer (``request.schema``) is held to its JSON schema by llama-cpp's
grammar; with tools offered as well, the grammar allows either the answer or a call.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import json
import re
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nbconvo._errors import (
    ConfigurationError,
    ContextWindowExceeded,
    ProviderError,
    StreamInterrupted,
    UsageError,
)
from nbconvo._localmodel import resolve_llama_target
from nbconvo._parts import ReasoningPart, TextPart, ToolCallPart, ToolResultPart, refuse
from nbconvo._settings import Settings, process_settings
from nbconvo._tools import describe_call
from nbconvo._types import (
    ChatRequest,
    Finish,
    Message,
    Notice,
    ProviderEvent,
    ResponseSchema,
    ToolSpec,
    Usage,
)
from nbconvo.providers._content import LLAMA_TEXT_ONLY

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt
    from llama_cpp import Llama, LlamaState
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    Tokens = Sequence[int] | npt.NDArray[Any]

_PER_MESSAGE_OVERHEAD = 4  # role markers and separators of a typical chat template
_FINISH = {"stop": "stop", "length": "length"}
_MISSING = "llama-cpp-python is not installed: pip install 'nbconvo[local]'"


@dataclass
class _LoadedModel:
    llm: Llama
    formatter: Jinja2ChatFormatter | None
    tools: bool = False  # its chat template renders tools (and tool calls and results)
    lock: threading.Lock = field(default_factory=threading.Lock)
    owner: object | None = None  # the token of the stream that currently drives llm
    active: Iterator[Any] | None = None  # that stream's llama iterator
    states: _States | None = None  # states kept by token prefix (None: local_cache_mb 0)

    def states_within(self, budget_mb: int) -> _States | None:
        """The kept states, held to ``budget_mb`` MB from now on (0: none kept)."""
        if budget_mb <= 0:
            if self.states is not None:
                self.states = None
                _give_back_freed_memory()
        elif self.states is None:
            self.states = _state_cache_type()(budget_mb << 20)
        else:
            self.states.resize(budget_mb << 20)
        return self.states


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
        _drop_unread_logits(llm)
        formatter = _make_formatter(llama_cpp, llm)
        tools = formatter is not None and "tools" in formatter.template
        loaded = _LoadedModel(llm=llm, formatter=formatter, tools=tools)
        _MODELS[key] = loaded
        return loaded


@atexit.register
def _close_all() -> None:
    # Free the models while the interpreter is intact: llama-cpp's own __del__ fails with a
    # TypeError when it runs during interpreter teardown, after its module globals are gone.
    with _LOAD_LOCK:
        for loaded in _MODELS.values():
            loaded.states = None
            with contextlib.suppress(Exception):
                loaded.llm.close()
        _MODELS.clear()


def _close_quietly(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _free_sampler(llm: Llama) -> None:
    """Free the sampler of the request just over. llama-cpp-python makes one a request and
    its object sits in a reference cycle, so the sampler chain it owns in llama.cpp (with
    an n_vocab-sized buffer: 1.8 MB for Qwen2.5) waits for Python's cycle collector: RSS
    grew by that much a turn (bench/bench_local_cache.py). The next request makes its own."""
    sampler = getattr(llm, "_sampler", None)
    if sampler is not None:
        llm._sampler = None
        with contextlib.suppress(Exception):
            sampler.close()


# -- states kept by token prefix (issue #19) ------------------------------------------------

# A path that leaves the next prompt only in its last few tokens is not worth a copy of
# the whole state: evaluating those tokens again costs less.
_MIN_KEPT_TAIL = 16


def _drop_unread_logits(llm: Llama) -> None:
    """Cut llama's logits buffer (``scores``: n_batch × n_vocab floats, 311 MB for Qwen2.5)
    to one row, unless the model keeps every token's logits (``logits_all``, for logprobs).
    Sampling reads the logits from llama.cpp's context, never from this buffer, but
    ``save_state`` copies it into every state and ``load_state`` writes it back."""
    if getattr(llm, "_logits_all", True):
        return
    import numpy as np

    llm.scores = np.zeros((1, llm.n_vocab()), dtype=np.single)


def common_prefix(a: Tokens, b: Tokens) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    import numpy as np

    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if differ.size else n


class _States(Protocol):
    """llama-cpp's ``LlamaRAMCache`` as it is used here (see ``_state_cache_type``)."""

    capacity_bytes: int

    @property
    def cache_size(self) -> int: ...

    def __len__(self) -> int: ...

    def keep(self, llm: Llama) -> None: ...

    def longest(self, tokens: Sequence[int]) -> tuple[LlamaState | None, int]: ...

    def resize(self, capacity_bytes: int) -> None: ...


def state_bytes(state: LlamaState) -> int:
    """The memory a kept state holds: llama.cpp's state, and llama's token and logits
    copies."""
    return int(state.llama_state_size) + int(state.input_ids.nbytes) + int(state.scores.nbytes)


def llama_state_size(llm: Llama) -> int:
    """The bytes llama.cpp writes for ``llm``'s state (a dry run over the KV cache)."""
    import llama_cpp

    return int(llama_cpp.llama_state_get_size(llm._ctx.ctx))


def saved_bytes(llm: Llama, size: int | None = None) -> int:
    """``state_bytes`` of the state ``save_state(llm)`` would make, before making it
    (``size``: ``llama_state_size(llm)``, when already known)."""
    scores = llm.scores[: llm.n_tokens, :]
    size = llama_state_size(llm) if size is None else size
    return size + int(llm.input_ids.nbytes) + int(scores.nbytes)


def save_state(llm: Llama, size: int | None = None) -> LlamaState:
    """``Llama.save_state`` with one copy of llama.cpp's state: llama-cpp's copies it into
    a buffer, then into a buffer of the size written, then into ``bytes``, so saving a
    state of S bytes passed through 3 S (the high-water mark of a 50-turn session on six
    branches was 88 MB over its 32 MB budget, bench/bench_local_cache.py). Here llama.cpp
    writes the state once, into the buffer that is kept (``llama_state_get_size`` is what
    ``llama_state_get_data`` writes)."""
    import llama_cpp
    from llama_cpp import LlamaState

    size = llama_state_size(llm) if size is None else size
    buffer = (ctypes.c_uint8 * size)()
    written = int(llama_cpp.llama_state_get_data(llm._ctx.ctx, buffer, size))
    if written != size:
        raise RuntimeError(f"llama.cpp wrote {written} bytes of a {size}-byte state")
    return LlamaState(
        scores=llm.scores[: llm.n_tokens, :].copy(),
        input_ids=llm.input_ids.copy(),
        n_tokens=llm.n_tokens,
        llama_state=buffer,  # type: ignore[arg-type]  # a buffer, read in place by load_state
        llama_state_size=size,
        seed=llm._seed,
    )


def load_state(llm: Llama, state: LlamaState) -> None:
    """``Llama.load_state`` reading the kept buffer in place (llama-cpp's copies it first:
    a passing copy of the whole state)."""
    import llama_cpp

    llm.scores[: state.n_tokens, :] = state.scores
    rest = llm.scores[state.n_tokens :, :]
    rest[rest > 0] = 0.0
    llm.input_ids = state.input_ids.copy()
    llm.n_tokens = state.n_tokens
    llm._requires_eval = True
    llm._seed = state.seed
    size = state.llama_state_size
    if llama_cpp.llama_state_set_data(llm._ctx.ctx, state.llama_state, size) != size:
        raise RuntimeError("llama.cpp did not read the whole kept state")


@functools.cache
def _state_cache_type() -> Callable[[int], _States]:
    """``LlamaRAMCache`` (llama-cpp's states by token sequence, in recency order, evicted
    oldest first past ``capacity_bytes``), counting all a state holds, returning how much
    of a prompt a state covers, and letting go of states a newer one extends."""
    from llama_cpp.llama_cache import LlamaRAMCache

    class StateCache(LlamaRAMCache):
        def __init__(self, capacity_bytes: int) -> None:
            super().__init__(capacity_bytes)
            self._size = 0

        def __len__(self) -> int:
            return len(self.cache_state)

        @property
        def cache_size(self) -> int:
            return self._size

        def _find_longest_prefix_key(self, key: tuple[int, ...]) -> tuple[int, ...] | None:
            best, best_length = None, 0
            for k in self.cache_state:
                length = common_prefix(k, key)
                if length > best_length:
                    best, best_length = k, length
            return best

        def longest(self, tokens: Sequence[int]) -> tuple[LlamaState | None, int]:
            """The state sharing the longest prefix with ``tokens`` (now the most recently
            used) and that prefix's length; (None, 0) when none shares a token."""
            key = self._find_longest_prefix_key(tuple(tokens))
            if key is None:
                return None, 0
            self.cache_state.move_to_end(key)
            return self.cache_state[key], common_prefix(key, tokens)

        def keep(self, llm: Llama) -> None:
            """Keep ``llm``'s current state, keyed by the tokens it has evaluated."""
            key = tuple(int(t) for t in llm.input_ids[: llm.n_tokens])
            if not key:
                return
            for k in list(self.cache_state):
                if len(k) >= len(key) and k[: len(key)] == key:
                    self.cache_state.move_to_end(k)  # a kept state holds this one already
                    return
            for k in list(self.cache_state):
                if len(k) < len(key) and key[: len(k)] == k:
                    self._drop(k)  # this one holds that one
            size = llama_state_size(llm)
            need = saved_bytes(llm, size)
            if need > self.capacity_bytes:
                return  # larger than the whole budget: not kept
            # Room first, so what is kept never exceeds the budget, not even for a moment.
            if self._size + need > self.capacity_bytes:
                while self._size + need > self.capacity_bytes and self.cache_state:
                    self._drop(next(iter(self.cache_state)))  # the least recently used
                _give_back_freed_memory()
            self[key] = save_state(llm, size)

        def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
            key = tuple(key)
            if key in self.cache_state:
                self._drop(key)
            if state_bytes(value) > self.capacity_bytes:
                return  # larger than the whole budget: not kept
            self.cache_state[key] = value
            self._size += state_bytes(value)
            self.resize(self.capacity_bytes)

        def resize(self, capacity_bytes: int) -> None:
            self.capacity_bytes = capacity_bytes
            while self._size > capacity_bytes and self.cache_state:
                self._drop(next(iter(self.cache_state)))  # the least recently used

        def _drop(self, key: tuple[int, ...]) -> None:
            self._size -= state_bytes(self.cache_state.pop(key))

    return StateCache


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, None elsewhere."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def _give_back_freed_memory() -> None:
    """Return the heap's free pages to the system. A state let go frees megabytes; glibc
    keeps such blocks in its heap once it has raised its mmap threshold, so the process's
    RSS would outgrow the budget by what was freed (by half of it in a 50-turn session on
    six branches, bench/bench_local_cache.py; with this, RSS grows by what is kept)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _reused(llm: Llama, live: int, prompt_length: int) -> int:
    """The prompt tokens llama will not evaluate, its KV cache holding the prompt's first
    ``live`` tokens (``Llama.generate``'s rule: a prompt evaluated whole is sampled at once
    only if its logits are still current, else its last token is evaluated again; a
    model whose KV cache cannot be cut at a position starts over)."""
    if live >= prompt_length:
        if llm.n_tokens == prompt_length and not getattr(llm, "_requires_eval", True):
            return prompt_length
        live = prompt_length - 1
    if live <= 0:
        return 0
    if getattr(llm, "_is_recurrent", False) or getattr(llm, "_is_hybrid", False):
        return 0
    return live


def evaluate_all_but_last(llm: Llama, prompt: Sequence[int]) -> None:
    """Evaluate the prompt but its last token, which llama's generator then evaluates
    alone: the last token, whose logits give the answer's first token, is always computed
    in a batch of one, so the same prompt gets the same logits whether it is new, found
    whole in the KV cache (a rerun) or resumed from a kept state. llama.cpp's CPU kernels
    do not compute a token in a batch of one to the same bits as in a larger batch, and at
    temperature 0 a rerun of a prompt evaluated whole the first time answered differently
    (the 0.5B model; tests/integration/test_local_cache.py)."""
    if getattr(llm, "_is_recurrent", False) or getattr(llm, "_is_hybrid", False):
        return  # a KV cache that cannot be cut at a position: llama's own way
    live = common_prefix(llm.input_ids[: llm.n_tokens], prompt)
    if live >= len(prompt) - 1:
        return  # llama evaluates the last token alone already
    llm.n_tokens = live  # eval drops what the KV cache holds after it
    llm.eval(prompt[live:-1])


def resume(llm: Llama, states: _States | None, prompt: Sequence[int], seeded: bool) -> int:
    """Make ready to evaluate ``prompt``: keep the evaluated path if the prompt leaves it,
    then load the kept state sharing the longest prefix with the prompt when that is longer
    than what the KV cache holds (a seeded prompt starts afresh instead). Returns the
    prompt tokens llama will reuse rather than evaluate."""
    live = common_prefix(llm.input_ids[: llm.n_tokens], prompt)
    if states is not None and llm.n_tokens - live >= _MIN_KEPT_TAIL:
        states.keep(llm)
    if seeded:
        # Reusing the KV cache evaluates the prompt in other batches than a fresh load
        # does, and those float differences change what a seeded sampler picks. A seed
        # asks for repeatable answers (also in a new kernel), so pay for evaluating the
        # whole prompt again.
        llm.reset()  # type: ignore[no-untyped-call]
        return 0
    if states is not None:
        state, length = states.longest(prompt)
        if state is not None and length > live:
            seed = getattr(llm, "_seed", None)
            load_state(llm, state)
            if seed is not None:  # a state's seed is its own answer's: not the next one's
                llm.set_seed(seed)
            live = common_prefix(llm.input_ids[: llm.n_tokens], prompt)
    return _reused(llm, live, len(prompt))


DEFAULT_MAX_TOKENS = 1024
NO_TOOLS = (
    "{label}: this model's chat template has no tool calls: use a Qwen2.5 model "
    "(llama:qwen2.5-coder-0.5b) or a server that runs tools (llamacpp:MODEL --base-url URL); "
    "nothing was sent"
)


# -- requests in the shapes the GGUF chat template renders -------------------------------


def llama_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]] | None:
    """``tools=`` of ``create_chat_completion`` (and of the chat template): Hugging Face's
    ``function`` entries; None for none, so a template's ``if tools`` stays false."""
    if not tools:
        return None
    return [{"type": "function", "function": t.to_json()} for t in tools]


def _arguments(text: str) -> Any:
    """A call's arguments as templates render them (``tojson`` of a dict); arguments that
    are not a JSON object stay the text the model wrote."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def said_result(call: ToolCallPart | None, result: ToolResultPart, last: bool) -> str:
    """A tool's result as a small local model reads it best: which call gave it, and (after
    the last result of a round) that it is time to answer. Given the bare result, the
    Qwen2.5-Coder 0.5B and 1.5B models call the same tool again and again; told
    "add(a=1234, b=5678) returned 6912. Now answer the question in words, using this
    result.", both answer with it (tests/integration/test_llama_tools.py). The same
    parts always read the same: a later turn's prompt extends this one's."""
    what = describe_call(call) if call is not None else (result.name or "the tool")
    said = (
        f"{what} failed: {result.content}"
        if result.is_error
        else (f"{what} returned {result.content}")
    )
    said = said if said.endswith((".", "!", "?", "\n")) else said + "."
    if not last:
        return said
    if result.is_error:
        return f"{said} Now answer the question in words, or call a tool with other arguments."
    return f"{said} Now answer the question in words, using this result."


def said_results(messages: Sequence[Message]) -> list[str]:
    """``said_result`` of every tool result in ``messages``, in order (for a llama
    server, whose template renders a result's text as it comes)."""
    made: dict[str, ToolCallPart] = {}
    out: list[str] = []
    for message in messages:
        if isinstance(message["content"], str):
            continue
        results = [p for p in message["content"] if isinstance(p, ToolResultPart)]
        made.update((p.call_id, p) for p in message["content"] if isinstance(p, ToolCallPart))
        out += [
            said_result(made.get(r.call_id), r, i == len(results) - 1)
            for i, r in enumerate(results)
        ]
    return out


def llama_messages(messages: Sequence[Message], label: str) -> list[dict[str, Any]]:
    """Neutral messages as llama-cpp's chat handler takes them: text as a string; an
    assistant's tool calls as Hugging Face ``tool_calls`` (arguments a dict); each tool
    result a ``tool`` message. Reasoning (another provider's) is left out; any other
    part is refused in one line, before sending."""
    out: list[dict[str, Any]] = []
    made: dict[str, ToolCallPart] = {}  # the calls so far, by id
    for message in messages:
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append(message)  # type: ignore[arg-type]  # a Message is such a dict
            continue
        if role == "tool":
            for index, part in enumerate(content):
                if not isinstance(part, ToolResultPart):
                    raise refuse(part, label, LLAMA_TEXT_ONLY)
                last = index == len(content) - 1
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": part.call_id,
                        "name": part.name,
                        "content": said_result(made.get(part.call_id), part, last),
                    }
                )
            continue
        text: list[str] = []
        calls: list[ToolCallPart] = []
        for part in content:
            if isinstance(part, TextPart):
                text.append(part.text)
            elif isinstance(part, ToolCallPart) and role == "assistant":
                calls.append(part)
            elif not isinstance(part, ReasoningPart):
                raise refuse(part, label, LLAMA_TEXT_ONLY)
        converted: dict[str, Any] = {"role": role, "content": "".join(text)}
        made.update((c.call_id, c) for c in calls)
        if calls:
            converted["tool_calls"] = [
                {
                    "id": c.call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c.arguments)},
                }
                for c in calls
            ]
        out.append(converted)
    return out


def _has_tool_parts(messages: Sequence[Message]) -> bool:
    return any(
        isinstance(p, ToolCallPart | ToolResultPart)
        for m in messages
        if not isinstance(m["content"], str)
        for p in m["content"]
    )


def grammar_schema(schema: ResponseSchema, tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """The JSON schema the answer's grammar follows: the structured answer's, or with
    tools offered, that or one call (``{"name": …, "arguments": …}``, as the model writes
    one bare) of an offered tool."""
    if not tools:
        return schema.schema
    answer = {k: v for k, v in schema.schema.items() if k != "$defs"}
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": t.parameters},
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    combined: dict[str, Any] = {"anyOf": [answer, *calls]}
    if "$defs" in schema.schema:  # a recursive type's definitions, where $ref finds them
        combined["$defs"] = schema.schema["$defs"]
    return combined


# -- tool calls out of the streamed text ---------------------------------------------------

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _partial_suffix(text: str, marker: str) -> int:
    """How many characters at the end of ``text`` may be the start of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


def _bare_start(held: str) -> bool | None:
    """Whether an answer beginning with ``held`` is a call written bare (``{"name":``,
    maybe in a ```json fence): True, False, or None while it cannot tell yet."""
    s = held.lstrip()
    if s.startswith("```") or "```".startswith(s):
        rest = s[3:]
        newline = rest.find("\n")
        if newline < 0:
            return None if "json".startswith(rest.rstrip(" \t")) else False
        if rest[:newline].strip() not in ("", "json"):
            return False
        s = rest[newline + 1 :].lstrip()
    if not s:
        return None
    if not s.startswith("{"):
        return False
    s = s[1:].lstrip()
    if len(s) < len('"name"'):
        return None if '"name"'.startswith(s) else False
    if not s.startswith('"name"'):
        return False
    s = s[len('"name"') :].lstrip()
    return None if not s else s.startswith(":")


def _unfenced(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rstrip()
        if stripped.endswith("```"):
            stripped = stripped[:-3]
    return stripped.strip()


def _call_fields(data: Any) -> tuple[str, str] | None:
    """The name and arguments text of a parsed ``{"name": …, "arguments": …}``."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        return data["name"], arguments
    return data["name"], json.dumps(arguments, ensure_ascii=False)


class ToolCallText:
    """The tool calls in a streamed answer, and the text around them.

    ``feed`` takes each piece and returns the text to show now; it holds back what may
    still be markup (a partial ``<tool_call>``, the start of a bare call). ``end`` returns
    the rest of the text, and ``calls`` holds the calls, each once complete:

    * a ``<tool_call>…</tool_call>`` block (Qwen2.5, Hermes): JSON naming the function
      and its arguments; a block that is not JSON is still a call, its raw text as the
      arguments, so the model is told what was wrong;
    * a whole answer that is one or more JSON objects ``{"name": N, "arguments": …}``
      (bare or in a ```json fence) where every N is an offered tool: what small models
      write instead of the tags. Anything else there is answer text.

    Call ids are ``call_0``, ``call_1``, …, skipping the ids in ``taken`` (the calls
    already in the conversation)."""

    def __init__(self, names: Collection[str], taken: Collection[str] = ()) -> None:
        self.names = set(names)
        self.taken = set(taken)
        self.calls: list[ToolCallPart] = []
        self._held = ""
        self._mode = "start"  # start, text, block (inside <tool_call>), bare
        self._next = 0

    def feed(self, piece: str) -> str:
        self._held += piece
        shown: list[str] = []
        while True:
            if self._mode == "start":
                bare = _bare_start(self._held)
                if bare is None:
                    break
                self._mode = "bare" if bare else "text"
            if self._mode == "bare":
                break
            if self._mode == "text":
                at = self._held.find(_OPEN)
                if at < 0:
                    keep = _partial_suffix(self._held, _OPEN)
                    if self.calls and not self._held.strip():
                        keep = len(self._held)  # the blank line between two calls
                    cut = len(self._held) - keep
                    shown.append(self._held[:cut])
                    self._held = self._held[cut:]
                    break
                before = self._held[:at]
                if before.strip() or not self.calls:  # not the blank line between calls
                    shown.append(before)
                self._held = self._held[at + len(_OPEN) :]
                self._mode = "block"
            end = self._held.find(_CLOSE)
            if end < 0:
                break
            self._block(self._held[:end])
            self._held = self._held[end + len(_CLOSE) :]
            self._mode = "text"
        return "".join(shown)

    def end(self, reason: str = "stop") -> str:
        """The text still held, once the answer is over (``reason``: why it ended)."""
        held, self._held = self._held, ""
        if self._mode == "bare" and self._bare(held):
            return ""
        if self._mode == "block":
            if reason != "length":
                self._block(held)
                return ""
            held = _OPEN + held  # cut off mid-call: shown as it came
        return "" if self.calls and not held.strip() else held

    def _add(self, name: str, arguments: str) -> None:
        while f"call_{self._next}" in self.taken:
            self._next += 1
        call_id = f"call_{self._next}"
        self._next += 1
        self.calls.append(ToolCallPart(call_id, name, arguments))

    def _block(self, body: str) -> None:
        text = _unfenced(body)
        try:
            fields = _call_fields(json.loads(text))
        except ValueError:
            fields = None
        if fields is None:
            found = _NAME.search(text)
            fields = (found.group(1) if found else "", text)
        self._add(*fields)

    def _bare(self, held: str) -> bool:
        """Calls from an answer that is only calls written bare; False (and none) if it
        is anything else."""
        text = _unfenced(held)
        decoder = json.JSONDecoder()
        found: list[tuple[str, str]] = []
        at = 0
        while at < len(text):
            try:
                data, at = decoder.raw_decode(text, at)
            except ValueError:
                return False
            fields = _call_fields(data)
            if fields is None or fields[0] not in self.names:
                return False
            found.append(fields)
            while at < len(text) and text[at].isspace():
                at += 1
        for fields in found:
            self._add(*fields)
        return bool(found)


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
        self.cache_mb = settings.local_cache_mb  # states kept by token prefix (0: none)

    @property
    def label(self) -> str:
        return f"{self.prefix}:{self.model}"

    @property
    def context_window(self) -> int:
        return self.n_ctx

    def load(self) -> None:
        """Load the model now (``stream`` does it on first use)."""
        _load(self.path, self.n_ctx)

    def count_prompt_tokens(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> int:
        """Tokens of the prompt llama will see for ``messages`` with ``tools`` offered
        (see the module docstring)."""
        wire = llama_messages(messages, self.label)
        loaded = _load(self.path, self.n_ctx)
        with loaded.lock:
            return self._count_prompt(loaded, wire, llama_tools(tools))

    @staticmethod
    def _count_prompt(
        loaded: _LoadedModel,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> int:
        tokens = LlamaProvider._prompt_tokens(loaded, messages, tools)
        if tokens is not None:
            return len(tokens)
        llm = loaded.llm
        text = "\n".join(str(m.get("content") or "") for m in messages)
        content = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return len(content) + _PER_MESSAGE_OVERHEAD * len(messages)

    @staticmethod
    def _prompt_tokens(
        loaded: _LoadedModel,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> list[int] | None:
        """The prompt's tokens exactly as llama-cpp's chat handler makes them, when the
        GGUF template drives the chat; None otherwise."""
        if loaded.formatter is None:
            return None
        try:
            # Our dicts are the shapes llama's message union allows.
            rendered = loaded.formatter(messages=messages, tools=tools)  # type: ignore[arg-type]
        except Exception:
            return None
        tokens: list[int] = loaded.llm.tokenize(
            rendered.prompt.encode("utf-8"),
            add_bos=not rendered.added_special,
            special=True,
        )
        return tokens

    def _too_long(self, prompt_tokens: int) -> ContextWindowExceeded:
        return ContextWindowExceeded(
            f"{self.label}: the prompt is {prompt_tokens} tokens and the window is "
            f"{self.n_ctx}: try `%convo compact` or set NBCONVO_LLAMA_N_CTX higher"
        )

    def _grammar(self, request: ChatRequest) -> tuple[Any, Notice | None]:
        """The grammar of a structured answer, and a notice if its schema could not be
        made one (the answer is then only held to be JSON)."""
        assert request.schema is not None
        grammars = _import_llama().llama_grammar
        schema = grammar_schema(request.schema, request.tools)
        try:
            return grammars.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False), None
        except Exception as exc:
            why = " ".join(str(exc).split())[:200] or type(exc).__name__
            notice = Notice(
                f"{self.label}: the schema {request.schema.name} could not be made a grammar "
                f"({why}): the answer is held to be JSON, not to match it"
            )
            grammar = grammars.LlamaGrammar.from_string(grammars.JSON_GBNF, verbose=False)
            return grammar, notice

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        messages = request.all_messages()
        wire = llama_messages(messages, self.label)
        tools = llama_tools(request.tools)
        loaded = _load(self.path, self.n_ctx)
        if (tools or _has_tool_parts(messages)) and not loaded.tools:
            raise UsageError(NO_TOOLS.format(label=self.label))
        llm = loaded.llm
        kwargs: dict[str, Any] = {"messages": wire, "stream": True}
        if tools:
            kwargs["tools"] = tools
        if request.schema is not None:
            kwargs["grammar"], notice = self._grammar(request)
            if notice is not None:
                yield notice
        if request.temperature is not None:  # else llama's own default
            kwargs["temperature"] = request.temperature
        # Small local models can repeat themselves until the window is full: cap an answer
        # at DEFAULT_MAX_TOKENS unless the turn asks for another limit.
        kwargs["max_tokens"] = request.max_tokens or DEFAULT_MAX_TOKENS
        if request.seed is not None:
            kwargs["seed"] = request.seed
        calls = (
            ToolCallText(
                [t.name for t in request.tools],
                taken=[
                    p.call_id
                    for m in messages
                    if not isinstance(m["content"], str)
                    for p in m["content"]
                    if isinstance(p, ToolCallPart)
                ],
            )
            if request.tools
            else None
        )

        token = object()
        with loaded.lock:
            prompt = self._prompt_tokens(loaded, wire, tools)
            prompt_tokens = (
                len(prompt) if prompt is not None else self._count_prompt(loaded, wire, tools)
            )
            if prompt_tokens >= self.n_ctx:
                raise self._too_long(prompt_tokens)
            if loaded.active is not None:
                # A stream left suspended, never closed: it loses the model to this one.
                _close_quietly(loaded.active)
                _free_sampler(llm)
            states = loaded.states_within(self.cache_mb)
            seeded = request.seed is not None
            if prompt is not None:
                reused = resume(llm, states, prompt, seeded)
                try:
                    evaluate_all_but_last(llm, prompt)
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        llm.reset()  # type: ignore[no-untyped-call]  # see below
                    if not isinstance(exc, Exception):
                        raise
                    raise self._failure(exc, prompt_tokens, "") from None
            else:  # tokens unknown (no GGUF template): llama reuses what it can, unsaid
                reused = 0
                if seeded:
                    llm.reset()  # type: ignore[no-untyped-call]  # see resume
            try:
                inner: Iterator[Any] = iter(llm.create_chat_completion(**kwargs))
            except Exception as exc:
                raise ProviderError(f"{self.label} failed to start: {exc}") from None
            loaded.owner, loaded.active = token, inner

        generated: list[str] = []  # everything the model wrote, markup included
        parts: list[str] = []  # the answer's text as shown
        reason: str | None = None
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
                        generated.append(content)
                        shown = calls.feed(content) if calls is not None else content
                        if shown:
                            parts.append(shown)
                            yield shown
                    reason = choice.get("finish_reason") or reason
        finally:
            with loaded.lock:
                if loaded.owner is token:
                    loaded.owner, loaded.active = None, None
                    # Closing at a yield point leaves llama's state consistent: the next
                    # request re-matches its prompt against the evaluated tokens.
                    _close_quietly(inner)
                    _free_sampler(llm)

        if calls is not None:
            rest = calls.end(reason or "stop")
            if rest:
                parts.append(rest)
                yield rest
            yield from calls.calls
        if reason is not None:
            finish = _FINISH.get(reason, "other")
            if calls is not None and calls.calls and finish == "stop":
                finish = "tool_calls"
            yield Finish(finish)

        answer = "".join(generated)
        with loaded.lock:
            output_tokens = (
                len(llm.tokenize(answer.encode("utf-8"), add_bos=False, special=True))
                if answer
                else 0
            )
        yield Usage(prompt_tokens, output_tokens, cached_input_tokens=reused)

    def _failure(self, exc: Exception, prompt_tokens: int, partial: str) -> Exception:
        message = str(exc)
        if "exceed context window" in message:
            return self._too_long(prompt_tokens)
        if partial:
            return StreamInterrupted(f"{self.label} failed mid-answer: {message}", partial=partial)
        return ProviderError(f"{self.label} failed: {message}")
