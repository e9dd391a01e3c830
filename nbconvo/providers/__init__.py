"""Provider registry: a model spec ``PREFIX:MODEL`` to a provider instance.

Providers are imported lazily, on first use, so ``%load_ext nbconvo`` stays light.
Adding a provider means adding a row here and a module; the magics never change.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbconvo._credentials import keyed_default_model
from nbconvo._errors import ConfigurationError
from nbconvo._settings import Settings, process_settings
from nbconvo._types import ChatRequest, Message
from nbconvo.providers._base import Provider
from nbconvo.providers._content import COPILOT_TEXT_ONLY, LLAMA_TEXT_ONLY, text_only

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class ProviderEntry:
    prefix: str
    target: str  # "module:factory"
    description: str
    default_base_url: str | None = None
    http: bool = True  # takes a shared httpx.Client (the in-process model does not)
    text_only: str | None = None  # why it takes no images (None: it takes them)


PROVIDERS: Mapping[str, ProviderEntry] = {
    e.prefix: e
    for e in (
        ProviderEntry(
            "openai", "nbconvo.providers.openai:OpenAIProvider", "OpenAI Chat Completions"
        ),
        ProviderEntry(
            "openai-responses",
            "nbconvo.providers.openai_responses:OpenAIResponsesProvider",
            "OpenAI Responses API (reasoning carried from turn to turn)",
        ),
        ProviderEntry(
            "anthropic", "nbconvo.providers.anthropic:AnthropicProvider", "Anthropic Messages"
        ),
        ProviderEntry("gemini", "nbconvo.providers.gemini:GeminiProvider", "Google Gemini API"),
        ProviderEntry(
            "azure", "nbconvo.providers.azure:AzureOpenAIProvider", "Azure OpenAI deployments"
        ),
        ProviderEntry(
            "copilot",
            "nbconvo.providers.copilot:CopilotProvider",
            "Microsoft 365 Copilot Chat API (Graph)",
            text_only=COPILOT_TEXT_ONLY,
        ),
        ProviderEntry(
            "ollama",
            "nbconvo.providers.openai:OpenAICompatibleProvider",
            "Ollama (OpenAI-compatible)",
            "http://localhost:11434/v1",
        ),
        ProviderEntry(
            "vllm",
            "nbconvo.providers.openai:OpenAICompatibleProvider",
            "vLLM (OpenAI-compatible)",
            "http://localhost:8000/v1",
        ),
        ProviderEntry(
            "llamacpp",
            "nbconvo.providers.openai:OpenAICompatibleProvider",
            "llama.cpp server (OpenAI-compatible)",
            "http://localhost:8080/v1",
        ),
        ProviderEntry(
            "lmstudio",
            "nbconvo.providers.openai:OpenAICompatibleProvider",
            "LM Studio (OpenAI-compatible)",
            "http://localhost:1234/v1",
        ),
        ProviderEntry(
            "openai-compatible",
            "nbconvo.providers.openai:OpenAICompatibleProvider",
            "any OpenAI-compatible server (set --base-url or NBCONVO_BASE_URL)",
        ),
        ProviderEntry(
            "llama",
            "nbconvo.providers.llama:LlamaProvider",
            "a GGUF file in-process",
            http=False,
            text_only=LLAMA_TEXT_ONLY,
        ),
    )
}


def refuse_what_it_cannot_take(spec: str, messages: Sequence[Message]) -> None:
    """Refuse, in one line, an image for a provider that reads text only: from its entry
    alone, before it is made (so a replay refuses as the recording did)."""
    prefix, _ = split_spec(spec)
    why = PROVIDERS[prefix].text_only
    if why is not None:
        text_only(list(messages), spec, why)


def split_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-5.5"`` → ``("openai", "gpt-5.5")``, with a one-line error otherwise."""
    prefix, sep, model = spec.strip().partition(":")
    if not sep or not model.strip():
        raise ConfigurationError(
            f"bad model {spec!r}: write PROVIDER:MODEL, e.g. openai:gpt-5.5 or ollama:llama3.2 "
            f"(providers: {', '.join(PROVIDERS)})"
        )
    if prefix not in PROVIDERS:
        raise ConfigurationError(
            f"unknown provider {prefix!r} in {spec!r}: use one of {', '.join(PROVIDERS)}"
        )
    return prefix, model.strip()


def create_provider(
    spec: str,
    *,
    base_url: str | None = None,
    client: httpx.Client | None = None,
    settings: Settings | None = None,
) -> Provider:
    """The provider for ``spec``; ``client``, where given, is the session's shared HTTP
    client (the provider uses it and leaves closing it to the session); ``settings`` the
    session's (retries, the local model's window)."""
    prefix, model = split_spec(spec)
    entry = PROVIDERS[prefix]
    module_name, _, factory_name = entry.target.partition(":")
    factory: Callable[..., Provider] = getattr(importlib.import_module(module_name), factory_name)
    extra: dict[str, Any] = {"client": client} if client is not None and entry.http else {}
    if settings is not None:
        extra["settings"] = settings
    return factory(prefix=prefix, model=model, base_url=base_url or entry.default_base_url, **extra)


def default_model_spec(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The model setting (NBCONVO_MODEL), else a provider whose key is set, else the
    local model if installed."""
    settings = settings if settings is not None else process_settings()
    if settings.model:
        return settings.model
    keyed = keyed_default_model(environ)
    if keyed:
        return keyed
    if importlib.util.find_spec("llama_cpp") is not None:
        from nbconvo._localmodel import find_local_model

        path = find_local_model(settings)
        if path is not None:
            return f"llama:{path}"
    raise ConfigurationError(
        "no model chosen: run `%convo model PROVIDER:MODEL` (e.g. openai:gpt-5.5), "
        "set NBCONVO_MODEL or a key (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY), "
        "or `make fetch-model` for the local model"
    )


__all__ = ["PROVIDERS", "Provider", "create_provider", "default_model_spec", "split_spec"]


def wire_preview(provider: Provider | None, request: ChatRequest) -> dict[str, Any]:
    """What ``provider`` would send for ``request``, built by its own request builder
    (``%convo inspect``): method, URL and body for the HTTP providers, the neutral
    request for the others. Long base64 (images) is shortened for reading."""
    from nbconvo._parts import content_to_json

    url, body = getattr(provider, "url", None), getattr(provider, "body", None)
    if callable(url) and callable(body):
        shown: dict[str, Any] = {"POST": url(), "body": body(request)}
    else:
        shown = {
            "model": f"{request.provider}:{request.model}",
            "messages": [
                {"role": m["role"], "content": content_to_json(m["content"])}
                for m in request.all_messages()
            ],
            **({"temperature": request.temperature} if request.temperature is not None else {}),
            **({"max_tokens": request.max_tokens} if request.max_tokens is not None else {}),
        }
    shortened: dict[str, Any] = _shortened(shown)
    return shortened


def _shortened(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened(v) for v in value]
    if isinstance(value, str) and len(value) > 200 and " " not in value:
        return f"{value[:48]}… ({len(value):,} characters)"
    return value
