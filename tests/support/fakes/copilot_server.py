"""A loopback Microsoft 365 Copilot Chat API (Graph beta), from the reference (§5, §7).

``POST /beta/copilot/conversations`` → 201 with an id; ``…/{id}/chat`` → 200 with the
user echo and the reply; ``…/{id}/chatOverStream`` → SSE events, each a whole
``copilotConversation`` with the reply text *cumulative*, each followed by an ``id:``
line, intermediate ones named "Intermediate Conversation Update" with ``turnCount: 0``,
the last with the real name, ``turnCount`` incremented, the echo and the reply.
The actions also answer under their namespace-qualified names
(``…/{id}/microsoft.graph.copilot.chatOverStream``), the URLs Microsoft's own SDK
(microsoft-agents-m365copilot-beta) posts to; the docs and nbconvo use the short ones.
It requires a bearer token, ``message.text`` and a valid IANA ``locationHint.timeZone``,
and keeps each conversation's state on the server, as the real one does.

Every object it sends has exactly the properties of the SDK's models (``copilotConversation``,
``copilotConversationResponseMessage``, ``searchSensitivityLabelInfo``, ``ODataError``):
tests/test_providers_copilot_sdk.py parses them with the SDK and finds nothing unknown.
``docs_example_shape = True`` adds what only Microsoft's documented examples show: ``agentId``
on each conversation, ``status`` instead of ``state`` in the create reply, and
``isEncrypted`` in each sensitivity label. It accepts every request property the SDK's
``chatOverStream`` body has, ``responseOptions`` included, but models no response option:
``isDeltaStreamingEnabled: true`` is refused rather than silently ignored.

The answer reveals what the server knew: ``echo #n: prompt`` where n counts the user
turns of that server conversation, including those passed as ``additionalContext``.

Scenarios (``Canned``): any status/body/headers, ``error_after``, ``reset_after``,
``malformed_after``, ``options``: ``disengage`` (state ``disengagedForRai``),
``rewrite`` (the final text is not an extension of what was streamed).
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from tests.support.fakes.base import Canned, Exchange, FakeServer

# The short action names (as documented) or the namespace-qualified ones (as the SDK sends).
_CHAT = re.compile(
    r"^/beta/copilot/conversations/([^/]+)/(?:microsoft\.graph\.copilot\.)?(chat|chatOverStream)$"
)
_RESPONSE_OPTIONS = {"isAdaptiveCardEnabled", "isAnnotationsEnabled", "isDeltaStreamingEnabled"}
# The chat and chatOverStream request bodies' properties (the SDK's request body models).
_BODY_PROPERTIES = {
    "message",
    "locationHint",
    "additionalContext",
    "contextualResources",
    "responseOptions",
}


def graph_error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "2026-11-25T10:00:00",
                "request-id": "fake-request",
                "client-request-id": "fake-client",
            },
        }
    }


@dataclass
class ServerConversation:
    id: str
    context: list[dict[str, Any]] = field(default_factory=list)  # additionalContext, first turn
    prompts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    state: str = "active"


class FakeCopilot(FakeServer):
    path_prefix = "/beta"

    def __init__(
        self,
        *,
        api_key: str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJmYWtlIjoxfQ.c2ln",
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kwargs)
        self.conversations: dict[str, ServerConversation] = {}
        self.docs_example_shape = False  # the documented examples' extra properties

    def handle(self, ex: Exchange) -> None:
        if ex.header("authorization") != f"Bearer {self.api_key}":
            message = (
                "Access token is empty."
                if not ex.header("authorization")
                else ("Access token validation failure. Invalid audience.")
            )
            ex.json(401, graph_error("InvalidAuthenticationToken", message))
            return
        if ex.seen.method == "POST" and ex.path == "/beta/copilot/conversations":
            canned = self.script[0] if self.script else None
            if canned is not None and canned.options.get("on_create"):
                self.script.popleft()
                ex.json(canned.status, canned.body, canned.headers)
                return
            conversation = ServerConversation(str(uuid.uuid4()))
            self.conversations[conversation.id] = conversation
            # The SDK's model (and the resource page) say "state"; the create example "status".
            state = "status" if self.docs_example_shape else "state"
            ex.json(
                201,
                {
                    "id": conversation.id,
                    "createdDateTime": "2026-11-25T10:00:00Z",
                    "displayName": "",
                    state: "active",
                    "turnCount": 0,
                },
            )
            return
        match = _CHAT.match(ex.path)
        if ex.seen.method != "POST" or match is None:
            ex.json(
                404, graph_error("itemNotFound", f"Resource not found for the segment {ex.path}")
            )
            return
        conversation = self.conversations.get(match.group(1))
        if conversation is None:
            ex.json(404, graph_error("NotFound", "Conversation not found."))
            return
        body = ex.seen.body
        problem = validate(body)
        if problem:
            ex.json(400, graph_error("BadRequest", problem))
            return
        if conversation.state != "active":
            ex.json(400, graph_error("BadRequest", "The conversation is no longer active."))
            return
        self.requests.append(body)
        canned = self.next_canned()
        if canned.status != 200:
            ex.json(
                canned.status,
                canned.body or graph_error("InternalServerError", "error"),
                canned.headers,
            )
            return
        if not conversation.prompts and body.get("additionalContext"):
            conversation.context = body["additionalContext"]
        prompt = body["message"]["text"]
        users = [
            c["text"].removeprefix("User: ")
            for c in conversation.context
            if c["text"].startswith("User: ")
        ]
        answer = self.answer([*users, *conversation.prompts, prompt])
        pieces = self.pieces(answer, canned)
        final_state = "disengagedForRai" if canned.options.get("disengage") else "active"
        if match.group(2) == "chat":
            self._record(conversation, prompt, "".join(pieces), final_state)
            ex.json(200, self._snapshot(conversation, prompt, "".join(pieces), final=True))
            return
        self._stream(ex, conversation, prompt, pieces, canned, final_state)

    def _record(
        self, conversation: ServerConversation, prompt: str, answer: str, state: str
    ) -> None:
        conversation.prompts.append(prompt)
        conversation.answers.append(answer)
        conversation.state = state

    def _snapshot(
        self,
        conversation: ServerConversation,
        prompt: str,
        text: str | None,
        *,
        final: bool,
        state: str = "active",
    ) -> dict[str, Any]:
        label: dict[str, Any] = {"sensitivityLabelId": None}
        # Only in the documented examples, not in the SDK's models: agentId, isEncrypted.
        extra: dict[str, Any] = {"agentId": None} if self.docs_example_shape else {}
        if self.docs_example_shape:
            label.update(displayName=None, tooltip=None, priority=None, color=None)
            label["isEncrypted"] = None
        reply = {
            "@odata.type": "#microsoft.graph.copilotConversationResponseMessage",
            "id": "reply-" + conversation.id[:8],
            "text": text,
            "createdDateTime": "2026-11-25T10:00:01Z",
            "adaptiveCards": [],
            "attributions": [],
            "sensitivityLabel": label,
        }
        echo = {**reply, "id": "echo-" + conversation.id[:8], "text": prompt}
        if final:
            return {
                "id": conversation.id,
                **extra,
                "createdDateTime": "2026-11-25T10:00:00Z",
                "displayName": prompt[:60],
                "state": state,
                "turnCount": len(conversation.prompts),
                "messages": [echo, reply],
            }
        return {
            "id": conversation.id,
            **extra,
            "createdDateTime": "2026-11-25T10:00:00Z",
            "displayName": "Intermediate Conversation Update",
            "state": "active",
            "turnCount": 0,
            "messages": [] if text is None else [reply],
        }

    def _stream(
        self,
        ex: Exchange,
        conversation: ServerConversation,
        prompt: str,
        pieces: list[str],
        canned: Canned,
        state: str,
    ) -> None:
        ex.start_stream("text/event-stream")
        event_id = 130
        text = ""
        for n, piece in enumerate(pieces):
            if canned.error_after == n:
                ex.event(graph_error("InternalServerError", "The service failed."), event_id="999")
                return
            if canned.reset_after == n:
                ex.reset()
                return
            if canned.malformed_after == n:
                ex.event("{not json", event_id=str(event_id))
                return
            text += piece
            event_id += 1
            ex.event(
                self._snapshot(conversation, prompt, text, final=False), event_id=str(event_id)
            )
            if n == 0:  # an intermediate update without messages, as documented
                event_id += 1
                ex.event(
                    self._snapshot(conversation, prompt, None, final=False), event_id=str(event_id)
                )
        final_text = text
        if canned.options.get("rewrite"):
            final_text = "Rewritten: " + text
        self._record(conversation, prompt, final_text, state)
        ex.event(
            self._snapshot(conversation, prompt, final_text, final=True, state=state),
            event_id=str(event_id + 1),
        )


def validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    message = body.get("message")
    if (
        not isinstance(message, dict)
        or not isinstance(message.get("text"), str)
        or not message["text"].strip()
    ):
        return "The message text is required."
    hint = body.get("locationHint")
    zone = hint.get("timeZone") if isinstance(hint, dict) else None
    if not isinstance(zone, str) or not zone:
        return "locationHint.timeZone is required."
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"locationHint.timeZone '{zone}' is not a valid IANA time zone."
    context = body.get("additionalContext")
    if context is not None:
        if not isinstance(context, list):
            return "additionalContext must be a collection."
        for item in context:
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                return "Each additionalContext item needs a text."
            if set(item) - {"text", "description", "@odata.type"}:
                return "additionalContext items take only text, description and @odata.type."
    options = body.get("responseOptions")
    if options is not None:
        if not isinstance(options, dict) or set(options) - _RESPONSE_OPTIONS - {"@odata.type"}:
            return f"responseOptions take only {', '.join(sorted(_RESPONSE_OPTIONS))}."
        if options.get("isDeltaStreamingEnabled"):
            return "responseOptions.isDeltaStreamingEnabled is not modelled by this fake."
    unknown = set(body) - _BODY_PROPERTIES
    if unknown:
        return f"Unknown property {sorted(unknown)[0]!r}."
    return None
