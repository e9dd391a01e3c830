"""Azure OpenAI: Chat Completions on a deployment, in either URL style.

``azure:DEPLOYMENT`` with the endpoint from ``AZURE_OPENAI_ENDPOINT`` (or ``--base-url``):

* ``https://RESOURCE.openai.azure.com`` → the classic
  ``/openai/deployments/DEPLOYMENT/chat/completions?api-version=V`` (V from
  ``OPENAI_API_VERSION``, default below);
* an endpoint ending in ``/openai/v1`` → ``/openai/v1/chat/completions`` with the
  deployment as ``model`` and no ``api-version``.

The key goes in the ``api-key`` header (``AZURE_OPENAI_API_KEY``); an Entra ID token in
``AZURE_OPENAI_AD_TOKEN`` is sent as a bearer token instead, never both. The stream is
OpenAI's, plus chunks that carry only content-filter results (no ``choices`` or no
``delta``), which are skipped; errors carry a string ``code``. Prompt caching is OpenAI's
(automatic, ``prompt_cache_key`` per tree, see ``openai``); caches are not shared between
Azure subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbconvo._credentials import KEYS, key_for
from nbconvo._errors import ConfigurationError
from nbconvo._types import ChatRequest
from nbconvo.providers._http import error_message_from_body
from nbconvo.providers.openai import OpenAICompatibleProvider

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAICompatibleProvider):
    name = "azure"
    reads_documents = True
    sends_cache_key = True
    key_variable = KEYS["azure"].variable
    token_variable = KEYS["azure"].alternatives[0]
    key_required = True
    service = "Azure"

    def default_base_url(self, env: Mapping[str, str]) -> str:
        url = env.get("AZURE_OPENAI_ENDPOINT", "").strip()
        if not url:
            raise ConfigurationError(
                "no Azure endpoint: set AZURE_OPENAI_ENDPOINT to https://RESOURCE.openai.azure.com "
                f"(or run `%convo model azure:{self.model} --base-url URL`)"
            )
        return url

    @property
    def v1(self) -> bool:
        return self.base_url.endswith("/openai/v1")

    def url(self) -> str:
        if self.v1:
            return f"{self.base_url}/chat/completions"
        version = self.environ.get("OPENAI_API_VERSION") or DEFAULT_API_VERSION
        root = self.base_url.removesuffix("/openai")
        return f"{root}/openai/deployments/{self.model}/chat/completions?api-version={version}"

    def api_key(self) -> str | None:
        for name in (self.key_variable, self.token_variable):
            value = key_for(name, self.environ)
            if value:
                return value
        raise ConfigurationError(
            f"no API key for azure: set the environment variable {self.key_variable} "
            f"(or {self.token_variable} for an Entra ID token, or run `%convo key azure`)"
        )

    def headers(self) -> dict[str, str]:
        key = self.api_key() or ""
        uses_key = key_for(self.key_variable, self.environ) is not None
        return {"api-key": key} if uses_key else {"Authorization": f"Bearer {key}"}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body = super().body(request)
        body.pop("max_tokens", None)  # api-version 2024-10-21 and v1 take max_completion_tokens
        return body

    def _describe_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> tuple[str, bool]:
        message, code = error_message_from_body(text)
        where = f"azure ({status})"
        if status == 401:
            return (
                f"{where} rejected the key: set {self.key_variable} to a key of this resource "
                "and AZURE_OPENAI_ENDPOINT to its endpoint",
                False,
            )
        if status == 404:
            version = "" if self.v1 else ", OPENAI_API_VERSION"
            return (
                f"{where}: deployment {self.model!r} not found ({message}) — check the "
                f"deployment name, AZURE_OPENAI_ENDPOINT{version}",
                False,
            )
        if code == "content_filter":
            return (
                f"{where}: the prompt was blocked by Azure's content filter; rephrase it",
                False,
            )
        return super()._describe_error(status, text, headers)
