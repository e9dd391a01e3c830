"""Microsoft 365 Copilot Chat API (Microsoft Graph beta), streamed.

``POST {base}/copilot/conversations`` creates a server-side conversation;
``POST {base}/copilot/conversations/{id}/chatOverStream`` sends one message and streams
SSE events, each a whole ``copilotConversation`` whose assistant text is *cumulative*:
deltas are computed here by prefix, so no text is ever shown twice.

The conversation lives on the server, so each server conversation is remembered with the
exact messages it holds. A turn whose earlier messages match one continues it; a fork,
rerun or switch (earlier messages that match none) starts a new server conversation and
sends the earlier turns of the active path, and the system prompt and goal, as
``additionalContext``.

Auth: a delegated (work or school) Microsoft Graph token in ``NBCONVO_M365_TOKEN``, for a
user with a Microsoft 365 Copilot license, consented for Sites.Read.All, Mail.Read,
People.Read.All, OnlineMeetingTranscript.Read.All, Chat.Read, ChannelMessage.Read.All and
ExternalItem.Read.All. One way to get it: register an app in Entra ID with those delegated
permissions, then sign in with MSAL's device-code flow
(``PublicClientApplication(CLIENT_ID, authority=…).acquire_token_by_device_flow``) and
export the ``access_token``. Tokens expire after about an hour.
"""

from __future__ import annotations

import contextlib
import os
import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nbconvo._credentials import KEYS
from nbconvo._errors import ProviderError
from nbconvo._parts import content_text
from nbconvo._types import ChatRequest, Finish, Message, Notice, ProviderEvent
from nbconvo.providers._content import COPILOT_TEXT_ONLY, refuse_tools, text_only
from nbconvo.providers._http import (
    RETRYABLE_STATUS,
    EventFeed,
    HTTPProvider,
    HttpStatusError,
    ServiceError,
    error_message_from_body,
    parse_json_event,
)

M365_BASE_URL = "https://graph.microsoft.com/beta"
LIMITS = (
    "Microsoft 365 Copilot chooses its own model and takes no system prompt, temperature or "
    "max tokens, and reports no token usage (counts shown are estimates); the system prompt, "
    "goal and earlier turns of a new branch are sent as extra context"
)
COPILOT_NO_TOOLS = "the Copilot Chat API calls no functions and answers in prose only"
_TRANSIENT_CODES = {"InternalServerError", "ServiceUnavailable", "TooManyRequests", "Timeout"}
State = tuple[str, tuple[tuple[str, str], ...]]  # (system text, messages) a server convo holds


def machine_time_zone(environ: Mapping[str, str] | None = None) -> str:
    """The machine's IANA time zone (Copilot requires one), else UTC."""
    env = os.environ if environ is None else environ
    candidates = [env.get("NBCONVO_M365_TIMEZONE", ""), env.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    with contextlib.suppress(OSError):
        candidates.append(str(Path("/etc/localtime").resolve()).partition("zoneinfo/")[2])
    for name in candidates:
        if name and ("/" in name or name == "UTC"):
            try:
                zoneinfo.ZoneInfo(name)
                return name
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


def _state(system: str | None, messages: list[Message]) -> State:
    return (system or "", tuple((m["role"], content_text(m["content"])) for m in messages))


class CopilotProvider(HTTPProvider):
    name = "copilot"
    key_variable = KEYS["copilot"].variable
    base_url_variables = ("NBCONVO_M365_BASE_URL",)
    vendor_base_url = M365_BASE_URL

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.time_zone = machine_time_zone(self.environ)
        self.conversations: dict[State, str] = {}  # what each server conversation holds
        self._told = False

    def chat_body(self, prompt: str, context: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": {"text": prompt},
            "locationHint": {"timeZone": self.time_zone},
        }
        if context:
            body["additionalContext"] = context
        return body

    @staticmethod
    def context_for(system: str | None, earlier: list[Message]) -> list[dict[str, str]]:
        """The system text and each earlier exchange as ``additionalContext`` items."""
        items: list[dict[str, str]] = []
        if system:
            items.append({"text": system, "description": "instructions for this conversation"})
        turn = 0
        for message in earlier:
            if message["role"] == "user":
                turn += 1
            speaker = "User" if message["role"] == "user" else "Assistant"
            items.append(
                {
                    "text": f"{speaker}: {content_text(message['content'])}",
                    "description": f"turn {turn} of the conversation so far",
                }
            )
        return items

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        refuse_tools(request, self.label, COPILOT_NO_TOOLS)
        token = self.key()
        if not self._told:  # marked told once a turn succeeds: a failed turn shows no notes
            yield Notice(f"{self.label}: {LIMITS}")
        messages = [m for m in request.messages if m["role"] != "system"]
        text_only(messages, self.label, COPILOT_TEXT_ONLY)
        if not messages or messages[-1]["role"] != "user":
            raise ProviderError(f"{self.label}: the last message must be the user's prompt")
        earlier, prompt = messages[:-1], content_text(messages[-1]["content"])
        before = _state(request.system, earlier)
        headers = {"Authorization": f"Bearer {token}"}
        conversation = self.conversations.pop(before, None)
        reply = _Reply(prompt)
        try:
            yield from self._chat(conversation, request.system, earlier, prompt, reply, headers)
        except HttpStatusError as error:
            if error.status != 404 or conversation is None:
                raise
            # The server forgot the conversation (expired): start again with the context.
            yield from self._chat(None, request.system, earlier, prompt, reply, headers)
        self._told = True
        if reply.complete and reply.state == "active":
            answer: Message = {"role": "assistant", "content": reply.emitted}
            after = [*earlier, messages[-1], answer]
            self.conversations[_state(request.system, after)] = reply.conversation

    def _chat(
        self,
        conversation: str | None,
        system: str | None,
        earlier: list[Message],
        prompt: str,
        reply: _Reply,
        headers: dict[str, str],
    ) -> Iterator[ProviderEvent]:
        context: list[dict[str, str]] = []
        if conversation is None:
            created = self._sse().post_json(
                f"{self.base_url}/copilot/conversations", body={}, headers=headers
            )
            conversation = str((created or {}).get("id") or "")
            if not conversation:
                raise ProviderError(f"{self.label}: the server created no conversation id")
            context = self.context_for(system, earlier)
        reply.conversation = conversation
        yield from self._sse().stream(
            f"{self.base_url}/copilot/conversations/{conversation}/chatOverStream",
            body=self.chat_body(prompt, context),
            headers=headers,
            translate=lambda feed: self._translate(feed, reply),
        )

    def _translate(self, feed: EventFeed, reply: _Reply) -> Iterator[ProviderEvent]:
        for event in feed:
            if not event.data.strip():
                continue
            snapshot = parse_json_event(self.label, event.data)
            if isinstance(snapshot, dict) and isinstance(snapshot.get("error"), dict):
                code = str(snapshot["error"].get("code") or "")
                message = str(snapshot["error"].get("message") or code)
                raise ServiceError(
                    f"{self.label} failed mid-answer: {message}",
                    retryable=code in _TRANSIENT_CODES,
                )
            if isinstance(snapshot, dict):
                yield from reply.update(snapshot)
        if reply.state == "disengagedForRai":
            yield Finish(
                "content_filter",
                "Copilot ended this conversation (responsible-AI policy); the next turn starts "
                "a new one",
            )
        elif reply.complete:
            yield Finish("stop")
        else:
            raise ServiceError(
                f"{self.label}: the stream ended before the answer was complete", retryable=True
            )

    def _describe_error(
        self, status: int, text: str, headers: Mapping[str, str]
    ) -> tuple[str, bool]:
        message, code = error_message_from_body(text)
        where = f"copilot ({status})"
        if status == 401:
            return (
                f"{where} rejected the token: set {self.key_variable} to a fresh delegated "
                "Microsoft Graph token (they expire after about an hour)",
                False,
            )
        if status == 403:
            return (
                f"{where}: access denied ({message}) — the user needs a Microsoft 365 Copilot "
                "license and the token the Copilot Chat API permissions (see the provider docs)",
                False,
            )
        if status == 404:
            return (f"{where}: not found ({message}) — check NBCONVO_M365_BASE_URL", False)
        return (f"{where}: {message or code or 'request failed'}", status in RETRYABLE_STATUS)


class _Reply:
    """The assistant's text across cumulative snapshots, shown as deltas."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.shown = ""  # Copilot's latest text
        self.emitted = ""  # what the deltas added up to
        self.conversation = ""
        self.message_id: str | None = None
        self.state = "active"
        self.complete = False

    def update(self, snapshot: dict[str, Any]) -> Iterator[ProviderEvent]:
        self.state = str(snapshot.get("state") or snapshot.get("status") or self.state)
        final = snapshot.get("displayName") != "Intermediate Conversation Update"
        final = final and int(snapshot.get("turnCount") or 0) > 0
        messages = [m for m in snapshot.get("messages") or [] if isinstance(m, dict)]
        text = self._assistant_text(messages, final)
        if text is not None:
            if text.startswith(self.shown):
                if len(text) > len(self.shown):
                    yield self._emit(text[len(self.shown) :])
            else:
                # Copilot rewrote text it had already sent: show the final version once.
                yield Notice("Copilot revised its answer while streaming; its final text follows")
                yield self._emit("\n\n---\n\n" + text)
            self.shown = text
        if final:
            self.complete = True

    def _emit(self, text: str) -> str:
        self.emitted += text
        return text

    def _assistant_text(self, messages: list[dict[str, Any]], final: bool) -> str | None:
        by_id = [m for m in messages if self.message_id and m.get("id") == self.message_id]
        if by_id:
            return str(by_id[-1].get("text") or "")
        if final and len(messages) >= 2:
            return str(messages[-1].get("text") or "")
        if len(messages) == 1 and not (final and messages[0].get("text") == self.prompt):
            self.message_id = messages[0].get("id") or None
            return str(messages[0].get("text") or "")
        return None
