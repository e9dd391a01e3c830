"""Microsoft 365 Copilot checked against Microsoft's own SDK, microsoft-agents-m365copilot-beta
(Kiota-generated from the service's description; a test-only dependency, never imported by
nbconvo).

Requests: for a conversation create and for each chatOverStream call of a forked three-turn
dialogue (system text and earlier exchanges as ``additionalContext``, a ``locationHint``),
the body nbconvo sends equals, field by field, the body the SDK's request builder serializes
from the same values (``to_post_request_information``: no network), with the same method.
The one difference, asserted here: the SDK posts to the namespace-qualified action
(``…/microsoft.graph.copilot.chatOverStream``, OData's canonical form) where the docs, and
nbconvo, use the short name (``…/chatOverStream``); the Copilot fake answers both. The SDK's
own HTTP pipeline is also pointed at the fake, and reads what nbconvo reads.

Responses: every JSON object the Copilot fake sends (the create reply, each ``data:``
snapshot, the final one, the error bodies) parses with the SDK's models with nothing left in
``additional_data`` and nothing required missing, and the text nbconvo reports is the last
snapshot's reply text as the SDK reads it. The same through ``%%turn`` in a real shell.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._credentials import TYPED as TYPED_KEYS
from nbconvo._types import ChatRequest, Message
from nbconvo.providers import create_provider
from nbconvo.providers._base import Provider
from tests.support.fakes.base import Canned, Exchange
from tests.support.fakes.copilot_server import FakeCopilot, graph_error
from tests.support.provider_cases import Outcome, clean_environment, run

pytest.importorskip("microsoft_agents_m365copilot_beta")

from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from microsoft_agents_m365copilot_beta import AgentsM365CopilotBetaServiceClient
from microsoft_agents_m365copilot_beta.agents_m365_copilot_beta_request_adapter import (
    AgentsM365CopilotBetaRequestAdapter,
)
from microsoft_agents_m365copilot_beta.generated.copilot.conversations.item.microsoft_graph_copilot_chat.chat_post_request_body import (
    ChatPostRequestBody,
)
from microsoft_agents_m365copilot_beta.generated.copilot.conversations.item.microsoft_graph_copilot_chat_over_stream.chat_over_stream_post_request_body import (
    ChatOverStreamPostRequestBody,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_chat_response_options import (
    CopilotChatResponseOptions,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_context_message import (
    CopilotContextMessage,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_contextual_resources import (
    CopilotContextualResources,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_conversation import (
    CopilotConversation,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_conversation_location import (
    CopilotConversationLocation,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_conversation_request_message_parameter import (
    CopilotConversationRequestMessageParameter,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_conversation_response_message import (
    CopilotConversationResponseMessage,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_conversation_state import (
    CopilotConversationState,
)
from microsoft_agents_m365copilot_beta.generated.models.copilot_file import CopilotFile
from microsoft_agents_m365copilot_beta.generated.models.copilot_web_context import (
    CopilotWebContext,
)
from microsoft_agents_m365copilot_beta.generated.models.json import Json
from microsoft_agents_m365copilot_beta.generated.models.o_data_errors.o_data_error import (
    ODataError,
)

# The SDK's generated request builders warn about their own deprecated classes on import.
pytestmark = [
    pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning"),
]

TIME_ZONE = "Europe/Paris"
SYSTEM = "Be terse."
INSTRUCTIONS = "instructions for this conversation"
QUALIFIER = "microsoft.graph.copilot."  # the namespace of the SDK's action segments


class RecordingCopilot(FakeCopilot):
    """The Copilot fake, also keeping every JSON object it sends, in order, as
    ``(path, status, object)``: replies, ``data:`` snapshots and error bodies alike."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[tuple[str, int, Any]] = []

    def handle(self, ex: Exchange) -> None:
        send_json, send_event = ex.json, ex.event

        def recorded_json(status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self.sent.append((ex.path, status, payload))
            send_json(status, payload, headers)

        def recorded_event(
            data: Any, *, event: str | None = None, event_id: str | None = None
        ) -> None:
            if not isinstance(data, str):  # a malformed chunk is no JSON object
                self.sent.append((ex.path, 200, data))
            send_event(data, event=event, event_id=event_id)

        ex.json = recorded_json  # type: ignore[method-assign]
        ex.event = recorded_event  # type: ignore[method-assign]
        super().handle(ex)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingCopilot]:
    clean_environment(monkeypatch)
    try:
        with RecordingCopilot() as server:
            monkeypatch.setenv("NBCONVO_M365_TOKEN", server.api_key)
            monkeypatch.setenv("NBCONVO_M365_BASE_URL", server.base_url)
            monkeypatch.setenv("NBCONVO_M365_TIMEZONE", TIME_ZONE)
            yield server
    finally:
        TYPED_KEYS.clear()


# -- the SDK's side -------------------------------------------------------------------


def sdk_client(base_url: str) -> Any:
    """The SDK's own client and request adapter; nothing here touches the network."""
    adapter = AgentsM365CopilotBetaRequestAdapter(AnonymousAuthenticationProvider())
    adapter.base_url = base_url
    return AgentsM365CopilotBetaServiceClient(request_adapter=adapter)


def sdk_request(info: RequestInformation, base_url: str) -> tuple[str, str, Any]:
    """(method, URL path, JSON body) of a request the SDK built, as its adapter sends it."""
    info.path_parameters["baseurl"] = base_url  # what the adapter does before sending
    return info.http_method.value, urlsplit(info.url).path, json.loads(info.content)


def sdk_chat_body(prompt: str, context: list[tuple[str, str]]) -> ChatOverStreamPostRequestBody:
    return ChatOverStreamPostRequestBody(
        message=CopilotConversationRequestMessageParameter(text=prompt),
        location_hint=CopilotConversationLocation(time_zone=TIME_ZONE),
        additional_context=[CopilotContextMessage(text=t, description=d) for t, d in context]
        or None,
    )


def parse(payload: Any, model: type) -> Any:
    """``payload`` read by the SDK's JSON parse node into ``model``."""
    data = json.dumps(payload).encode()
    return (
        JsonParseNodeFactory().get_root_parse_node("application/json", data).get_object_value(model)
    )


def unknown_properties(value: Any, where: str = "") -> list[str]:
    """Every property an SDK model did not know, anywhere in ``value`` (its
    ``additional_data``). Adaptive cards are free-form JSON by design, and skipped."""
    if isinstance(value, list):
        return [
            u for n, item in enumerate(value) for u in unknown_properties(item, f"{where}[{n}]")
        ]
    if not dataclasses.is_dataclass(value) or isinstance(value, Json):
        return []
    found = [f"{where}.{name}" for name in getattr(value, "additional_data", {})]
    for f in dataclasses.fields(value):
        if f.name != "additional_data":
            found += unknown_properties(getattr(value, f.name), f"{where}.{f.name}")
    return found


def missing(model: Any, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if getattr(model, name) is None]


# What every documented example has: a conversation, each message in one, a Graph error.
CONVERSATION = ("id", "created_date_time", "display_name", "state", "turn_count")
MESSAGE = ("odata_type", "id", "text", "created_date_time", "adaptive_cards", "attributions")
INNER_ERROR = ("date", "request_id", "client_request_id")


def checked(path: str, status: int, payload: Any) -> Any:
    """One object the fake sent (on ``path``, with ``status``), parsed by the SDK: an
    ``ODataError`` or a ``CopilotConversation``, with nothing unknown and nothing missing."""
    assert isinstance(payload, dict), (path, payload)
    if "error" in payload:
        error = parse(payload, ODataError)
        assert unknown_properties(error) == [], (path, payload)
        assert missing(error.error, ("code", "message")) == [], (path, payload)
        assert missing(error.error.inner_error, INNER_ERROR) == [], (path, payload)
        return error
    assert status in (200, 201), (path, status, payload)
    conversation = parse(payload, CopilotConversation)
    assert unknown_properties(conversation) == [], (path, payload)
    assert missing(conversation, CONVERSATION) == [], (path, payload)
    if status == 200:  # a chat answer or a snapshot: its messages, typed by @odata.type
        assert conversation.messages is not None, (path, payload)
        for message in conversation.messages:
            assert isinstance(message, CopilotConversationResponseMessage), (path, payload)
            assert missing(message, MESSAGE) == [], (path, payload)
    return conversation


def sdk_final(fake: RecordingCopilot, since: int, until: int | None = None) -> Any:
    """The SDK's reading of the last snapshot streamed in ``fake.sent[since:until]``."""
    snapshots = [
        p
        for path, _, p in fake.sent[since:until]
        if path.endswith("chatOverStream") and "error" not in p
    ]
    final = checked("", 200, snapshots[-1])
    assert final.display_name != "Intermediate Conversation Update" and final.turn_count > 0
    return final


def sdk_reply_text(final: Any) -> str:
    text: str = final.messages[-1].text
    return text


# -- nbconvo's side -------------------------------------------------------------------


def chat(*texts: str, system: str | None = SYSTEM) -> ChatRequest:
    """Alternating user/assistant texts, ending with the user's prompt."""
    roles = ("user", "assistant")
    messages: list[Message] = [
        {"role": roles[n % 2], "content": text}  # type: ignore[typeddict-item]
        for n, text in enumerate(texts)
    ]
    return ChatRequest("copilot", "chat", tuple(messages), system=system)


def traced(fake: RecordingCopilot, provider: Provider, request: ChatRequest) -> tuple[Outcome, int]:
    """Run one turn; also where its objects begin in ``fake.sent``."""
    since = len(fake.sent)
    return run(provider, request), since


# -- requests -------------------------------------------------------------------------


def test_nbconvo_itself_never_imports_the_sdk() -> None:
    """The SDK is a test-only dependency: loading nbconvo and its Copilot provider (in a
    fresh interpreter, where this module's imports do not count) loads none of it."""
    probe = (
        "import sys, nbconvo, nbconvo._magics, nbconvo.providers.copilot\n"
        "print(sorted(m for m in sys.modules if m.startswith(('microsoft_agents', 'kiota'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert loaded.stdout.strip() == "[]"


def test_conversation_create_is_the_request_the_sdk_builds(fake: RecordingCopilot) -> None:
    outcome = run(create_provider("copilot:chat"), chat("hello"))
    assert outcome.error is None
    ours = fake.seen[0]
    client = sdk_client(fake.base_url)
    info = client.copilot.conversations.to_post_request_information(CopilotConversation())
    method, path, body = sdk_request(info, fake.base_url)
    assert (ours.method, ours.path) == (method, path) == ("POST", "/beta/copilot/conversations")
    assert ours.body == body == {}
    assert ours.headers["content-type"] == "application/json"
    assert info.headers.get("content-type") == {"application/json"}


def test_forked_dialogue_sends_the_bodies_the_sdk_builds(fake: RecordingCopilot) -> None:
    provider = create_provider("copilot:chat")
    turns = [
        chat("one"),
        chat("one", "echo #1: one", "two"),
        chat("one", "echo #1: one", "two", "echo #2: two", "three"),
        # a fork at turn 2: a new server conversation told the earlier turns as context
        chat("one", "echo #1: one", "two", "echo #2: two", "three, differently?"),
    ]
    contexts: list[list[tuple[str, str]]] = [
        [(SYSTEM, INSTRUCTIONS)],
        [],  # continued: only the new message
        [],
        [
            (SYSTEM, INSTRUCTIONS),
            ("User: one", "turn 1 of the conversation so far"),
            ("Assistant: echo #1: one", "turn 1 of the conversation so far"),
            ("User: two", "turn 2 of the conversation so far"),
            ("Assistant: echo #2: two", "turn 2 of the conversation so far"),
        ],
    ]
    answers = ["echo #1: one", "echo #2: two", "echo #3: three", "echo #3: three, differently?"]
    client = sdk_client(fake.base_url)
    for request, context, answer in zip(turns, contexts, answers, strict=True):
        outcome = run(provider, request)
        assert outcome.error is None and outcome.text == answer
        ours = fake.seen[-1]
        conversation = ours.path.split("/")[-2]
        prompt = request.messages[-1]["content"]
        builder = client.copilot.conversations.by_copilot_conversation_id(conversation)
        info = builder.microsoft_graph_copilot_chat_over_stream.to_post_request_information(
            sdk_chat_body(str(prompt), context)
        )
        method, path, body = sdk_request(info, fake.base_url)
        assert ours.method == method == "POST"
        # the same action: the SDK names it with its namespace, nbconvo as documented
        assert path == f"/beta/copilot/conversations/{conversation}/{QUALIFIER}chatOverStream"
        assert ours.path == path.replace(QUALIFIER, "")
        for name in ("message", "locationHint", "additionalContext"):  # field by field
            assert ours.body.get(name) == body.get(name), name
        assert ours.body == body
    assert len(fake.conversations) == 2  # main, continued twice; the fork
    assert ours.body["additionalContext"][0] == {"text": SYSTEM, "description": INSTRUCTIONS}

    # the SDK's own URL and body reach the same action of the same conversation
    headers = {"authorization": f"Bearer {fake.api_key}", "accept": "text/event-stream"}
    with httpx.stream(
        "POST", fake.root_url + path, json=body, headers=headers, timeout=30
    ) as answered:
        assert answered.status_code == 200
        answered.read()
    assert fake.conversations[conversation].prompts == ["three, differently?"] * 2


def test_the_fake_takes_every_property_of_the_sdks_chat_body(fake: RecordingCopilot) -> None:
    created = httpx.post(
        fake.base_url + "/copilot/conversations",
        json={},
        headers={"authorization": f"Bearer {fake.api_key}"},
    )
    conversation = created.json()["id"]
    builder = sdk_client(fake.base_url).copilot.conversations.by_copilot_conversation_id(
        conversation
    )
    body = sdk_chat_body("hi", [("User: earlier", "turn 1 of the conversation so far")])
    body.contextual_resources = CopilotContextualResources(
        files=[CopilotFile(uri="https://contoso.example/Spec.docx")],
        web_context=CopilotWebContext(is_web_enabled=False),
    )
    body.response_options = CopilotChatResponseOptions(
        is_adaptive_card_enabled=False,
        is_annotations_enabled=False,
        is_delta_streaming_enabled=False,
    )
    _, path, sent = sdk_request(
        builder.microsoft_graph_copilot_chat.to_post_request_information(
            ChatPostRequestBody(**{f.name: getattr(body, f.name) for f in dataclasses.fields(body)})
        ),
        fake.base_url,
    )
    assert set(sent) == set(ChatPostRequestBody().get_field_deserializers())  # all of them
    headers = {"authorization": f"Bearer {fake.api_key}"}
    answer = httpx.post(fake.root_url + path, json=sent, headers=headers)
    assert answer.status_code == 200, answer.text
    assert sdk_reply_text(checked(path, 200, answer.json())) == "echo #2: hi"  # context + hi

    # the fake stays strict: a response option it does not model, an unknown property
    for bad in (
        {**sent, "responseOptions": {"isDeltaStreamingEnabled": True}},
        {**sent, "stream": True},
    ):
        refused = httpx.post(fake.root_url + path, json=bad, headers=headers)
        assert refused.status_code == 400
        checked(path, 400, refused.json())


# -- responses ------------------------------------------------------------------------


def test_every_object_the_fake_sends_parses_with_the_sdk_models(
    fake: RecordingCopilot, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = create_provider("copilot:chat")

    first, since = traced(fake, provider, chat("one"))
    final = sdk_final(fake, since)
    assert first.error is None and first.text == sdk_reply_text(final) == "echo #1: one"
    assert final.state == CopilotConversationState.Active and final.turn_count == 1

    second, since = traced(fake, provider, chat("one", "echo #1: one", "two"))
    final = sdk_final(fake, since)
    assert second.text == sdk_reply_text(final) == "echo #2: two" and final.turn_count == 2

    fake.script.append(Canned(options={"rewrite": True}))
    rewritten, since = traced(fake, provider, chat("again"))
    final = sdk_final(fake, since)
    assert sdk_reply_text(final) == "Rewritten: echo #1: again"
    assert rewritten.text == "echo #1: again\n\n---\n\n" + sdk_reply_text(final)

    fake.script.append(Canned(options={"disengage": True}))
    stopped, since = traced(fake, provider, chat("risky"))
    final = sdk_final(fake, since)
    assert final.state == CopilotConversationState.DisengagedForRai
    assert stopped.text == sdk_reply_text(final)
    assert stopped.finish is not None and stopped.finish.reason == "content_filter"

    fake.script.append(
        Canned(
            status=429, body=graph_error("TooManyRequests", "slow"), headers={"Retry-After": "0"}
        )
    )
    retried, since = traced(fake, provider, chat("busy"))
    assert retried.error is None and retried.text == sdk_reply_text(sdk_final(fake, since))

    fake.script.append(Canned(error_after=2))
    broken = run(provider, chat("fragile"))
    assert broken.error is not None and "The service failed." in str(broken.error)

    monkeypatch.setenv("NBCONVO_M365_TOKEN", "eyJ0eXAiOiJKV1QifQ.e30.wrong")
    assert run(create_provider("copilot:chat"), chat("hello")).error is not None

    def post(url: str, body: Any) -> httpx.Response:
        return httpx.post(url, json=body, headers={"authorization": f"Bearer {fake.api_key}"})

    item = f"{fake.base_url}/copilot/conversations/{next(iter(fake.conversations))}"
    assert post(f"{fake.base_url}/copilot/conversations/nope/chatOverStream", {}).status_code == 404
    assert post(f"{item}/unknownAction", {}).status_code == 404
    assert post(f"{item}/chat", {"message": {"text": "hi"}}).status_code == 400  # no time zone
    sync = post(
        f"{item}/{QUALIFIER}chat",
        {"message": {"text": "sync"}, "locationHint": {"timeZone": "UTC"}},
    )
    assert sync.status_code == 200
    assert sdk_reply_text(checked(sync.url.path, 200, sync.json())) == "echo #3: sync"

    parsed = [(path, status, checked(path, status, payload)) for path, status, payload in fake.sent]
    # every kind of object the fake sends was among them
    statuses = {status for _, status, model in parsed if isinstance(model, ODataError)}
    assert statuses == {400, 401, 404, 429} | {200}  # 200: the error event mid-stream
    snapshots = [
        m
        for p, s, m in parsed
        if p.endswith("chatOverStream") and isinstance(m, CopilotConversation)
    ]
    intermediate = [m for m in snapshots if m.display_name == "Intermediate Conversation Update"]
    assert {len(m.messages) for m in intermediate} == {0, 1}
    assert all(m.turn_count == 0 for m in intermediate)
    assert len(snapshots) - len(intermediate) == 5  # a final one per completed stream
    creates = [m for p, s, m in parsed if s == 201]
    assert len(creates) == 5 and all(m.state == CopilotConversationState.Active for m in creates)


def test_the_documented_examples_extra_properties_are_unknown_to_the_sdk(
    fake: RecordingCopilot,
) -> None:
    """Microsoft's examples show ``agentId`` on each conversation, ``status`` (not ``state``)
    in the create reply and ``isEncrypted`` in each sensitivity label; the SDK's models have
    none of them. The fake can send them, and nbconvo reads the text all the same."""
    fake.docs_example_shape = True
    outcome, since = traced(fake, create_provider("copilot:chat"), chat("hello"))
    create = parse(fake.sent[since][2], CopilotConversation)
    assert unknown_properties(create) == [".status"] and create.state is None
    unknown: set[str] = set()
    for _, _, payload in fake.sent[since + 1 :]:
        unknown |= set(unknown_properties(parse(payload, CopilotConversation)))
    assert {re.sub(r"\[\d+\]", "", u) for u in unknown} == {
        ".agentId",
        ".messages.sensitivity_label.isEncrypted",
    }
    final = parse(fake.sent[-1][2], CopilotConversation)
    assert outcome.error is None and outcome.text == final.messages[-1].text == "echo #1: hello"


def test_the_sdk_itself_talks_to_the_fake_and_reads_what_nbconvo_reads(
    fake: RecordingCopilot,
) -> None:
    """The SDK's own HTTP pipeline against the fake: it creates, chats over the stream
    (whose bytes it hands back whole), chats synchronously and raises the fake's errors as
    ``ODataError``; nbconvo reports the same texts and the same error message."""
    sdk_errors: list[Any] = []

    async def through_the_sdk() -> tuple[Any, bytes, Any]:
        adapter = AgentsM365CopilotBetaRequestAdapter(AnonymousAuthenticationProvider())
        adapter.base_url = fake.base_url
        client = AgentsM365CopilotBetaServiceClient(request_adapter=adapter)
        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Authorization", f"Bearer {fake.api_key}")
        try:
            created = await client.copilot.conversations.post(CopilotConversation(), config)
            item = client.copilot.conversations.by_copilot_conversation_id(created.id)
            streamed = await item.microsoft_graph_copilot_chat_over_stream.post(
                sdk_chat_body("hello", []), config
            )
            chat_body = ChatPostRequestBody(
                message=CopilotConversationRequestMessageParameter(text="again"),
                location_hint=CopilotConversationLocation(time_zone=TIME_ZONE),
            )
            answered = await item.microsoft_graph_copilot_chat.post(chat_body, config)
            fake.script.append(Canned(status=403, body=graph_error("Forbidden", "No license.")))
            try:
                await item.microsoft_graph_copilot_chat.post(chat_body, config)
            except ODataError as error:
                sdk_errors.append(error)
            return created, streamed, answered
        finally:
            await adapter._http_client.aclose()  # the adapter has no close of its own

    created, streamed, answered = asyncio.run(through_the_sdk())
    assert created.state == CopilotConversationState.Active and created.id in fake.conversations
    events = [
        json.loads(line[6:]) for line in streamed.decode().splitlines() if line[:6] == "data: "
    ]
    assert len(events) > 2
    for event in events:
        checked("chatOverStream", 200, event)
    streamed_text = sdk_reply_text(parse(events[-1], CopilotConversation))
    assert streamed_text == "echo #1: hello"
    assert sdk_reply_text(answered) == "echo #2: again" and answered.turn_count == 2
    assert [s.path.rsplit("/", 1)[1] for s in fake.seen] == [
        "conversations",
        f"{QUALIFIER}chatOverStream",
        f"{QUALIFIER}chat",
        f"{QUALIFIER}chat",
    ]
    (error,) = sdk_errors
    assert error.response_status_code == 403 and error.error.code == "Forbidden"

    provider = create_provider("copilot:chat")
    assert run(provider, chat("hello", system=None)).text == streamed_text
    fake.script.append(Canned(status=403, body=graph_error("Forbidden", "No license.")))
    refused = run(provider, chat("again", system=None))
    assert refused.error is not None and error.error.message in str(refused.error)


# -- a forked dialogue through %%turn -------------------------------------------------


def test_forked_dialogue_through_turn_cells_checked_by_the_sdk(
    shell: InteractiveShell, fake: RecordingCopilot
) -> None:
    assert shell.run_cell("%convo model copilot:chat").success
    assert shell.run_cell(f"%convo system {SYSTEM}").success
    answers: list[str] = []
    marks: list[int] = []

    def turn(text: str, cell_id: str) -> None:
        marks.append(len(fake.sent))
        result = shell.run_cell(f"%%turn\n{text}", cell_id=cell_id)
        assert result.success, result.error_in_exec
        head = nbconvo.current().head
        assert head is not None
        answers.append(head.answer)

    turn("one", "c1")
    turn("two", "c2")
    turn("three", "c3")
    assert shell.run_cell("%convo fork 2 --name alt").success
    turn("three, differently?", "c4")

    assert answers == [
        "echo #1: one",
        "echo #2: two",
        "echo #3: three",
        "echo #3: three, differently?",
    ]
    assert [t.prompt for t in nbconvo.current().path] == ["one", "two", "three, differently?"]
    # what nbconvo recorded is each stream's last snapshot as the SDK reads it
    ends = [*marks[1:], None]
    assert answers == [
        sdk_reply_text(sdk_final(fake, *span)) for span in zip(marks, ends, strict=True)
    ]

    creates = [s for s in fake.seen if s.path == "/beta/copilot/conversations"]
    streams = [s for s in fake.seen if s.path.endswith("/chatOverStream")]
    assert len(creates) == 2 and len(streams) == 4  # main, continued twice; the fork
    client = sdk_client(fake.base_url)
    for seen in creates:
        body = parse(seen.body, CopilotConversation)
        assert unknown_properties(body) == [] and seen.method == "POST"
        info = client.copilot.conversations.to_post_request_information(body)
        assert sdk_request(info, fake.base_url)[1:] == (seen.path, seen.body)
    for seen in streams:
        body = parse(seen.body, ChatOverStreamPostRequestBody)
        assert unknown_properties(body) == [] and seen.method == "POST"
        assert body.message.text and body.location_hint.time_zone == TIME_ZONE
        conversation = seen.path.split("/")[-2]
        builder = client.copilot.conversations.by_copilot_conversation_id(conversation)
        info = builder.microsoft_graph_copilot_chat_over_stream.to_post_request_information(body)
        method, path, sdk_body = sdk_request(info, fake.base_url)
        assert (method, path.replace(QUALIFIER, ""), sdk_body) == ("POST", seen.path, seen.body)
    fork = parse(streams[-1].body, ChatOverStreamPostRequestBody)
    assert [(c.text, c.description) for c in fork.additional_context] == [
        (SYSTEM, INSTRUCTIONS),
        ("User: one", "turn 1 of the conversation so far"),
        ("Assistant: echo #1: one", "turn 1 of the conversation so far"),
        ("User: two", "turn 2 of the conversation so far"),
        ("Assistant: echo #2: two", "turn 2 of the conversation so far"),
    ]
    assert fork.message.text == "three, differently?"
    for path, status, payload in fake.sent:
        checked(path, status, payload)
