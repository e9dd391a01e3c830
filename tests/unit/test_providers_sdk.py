"""The fakes checked by the official SDKs (test-only dependencies), and nbconvo checked
against the SDKs: pointed at the same fake, each SDK parses the stream into the same text,
usage and stop reason nbconvo reports, and for the same conversation (system prompt, three
turns, temperature, max tokens) nbconvo sends the body the SDK sends, field for field.

Where nbconvo deliberately differs it is asserted here: Anthropic's API version
2026-10-21 takes no temperature (the SDK has no such argument either, so both omit it).
"""

from __future__ import annotations

from typing import Any

import pytest

from nbconvo._types import ChatRequest
from tests.support.fakes.base import Canned
from tests.support.provider_cases import BY_NAME, OPENAI_KEY, request, run

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
genai = pytest.importorskip("google.genai")
genai_types = pytest.importorskip("google.genai.types")

SYSTEM = "You are terse."
PROMPTS = ("first question", "second question", "third question")
TEMPERATURE = 0.3
MAX_TOKENS = 64


def conversation(case_name: str) -> ChatRequest:
    return request(
        BY_NAME[case_name],
        *PROMPTS,
        system=SYSTEM,
        temperature=TEMPERATURE,
        max_tokens=MAX_TOKENS,
    )


def openai_messages(chat: ChatRequest) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in chat.all_messages()]


# -- OpenAI ---------------------------------------------------------------------------


def _openai_sdk_stream(client: Any, model: str, **extra: Any) -> tuple[str, Any, str | None]:
    text, usage, finish = "", None, None
    stream = client.chat.completions.create(
        model=model,
        messages=openai_messages(conversation("openai")),
        stream=True,
        stream_options={"include_usage": True},
        **extra,
    )
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or "" if choice.delta else ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    return text, usage, finish


def test_openai_sdk_and_nbconvo_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        sdk_text, sdk_usage, sdk_finish = _openai_sdk_stream(
            client, "gpt-4.1", temperature=TEMPERATURE, max_completion_tokens=MAX_TOKENS
        )
        ours = run(case.provider(), conversation("openai"))
        assert ours.error is None
        assert ours.text == sdk_text == "echo #3: third question"
        assert ours.usage is not None and sdk_usage is not None
        assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
            sdk_usage.prompt_tokens,
            sdk_usage.completion_tokens,
        )
        assert ours.finish is not None and ours.finish.reason == sdk_finish == "stop"
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body
        assert fake.headers_seen[0]["authorization"] == fake.headers_seen[1]["authorization"]


def test_openai_length_and_content_filter_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["openai"]
    with case.running(monkeypatch) as fake:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        for reason in ("length", "content_filter"):
            fake.script.extend([case.canned(finish_reason=reason)] * 2)
            _, _, sdk_finish = _openai_sdk_stream(client, "gpt-4.1")
            ours = run(case.provider(), conversation("openai"))
            assert ours.finish is not None and ours.finish.reason == sdk_finish == reason
            assert ours.finish.notice


# -- Azure ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["deployments", "v1"])
def test_azure_sdk_and_nbconvo_agree(style: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["azure"]
    with case.running(monkeypatch) as fake:
        if style == "deployments":
            client: Any = openai.AzureOpenAI(
                azure_endpoint=fake.endpoint,
                api_key=fake.api_key,
                api_version="2024-10-21",
                max_retries=0,
            )
        else:
            endpoint = f"{fake.endpoint}/openai/v1"
            monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", endpoint)
            client = openai.OpenAI(api_key=fake.api_key, base_url=endpoint + "/", max_retries=0)
        text, usage, finish = _openai_sdk_stream(
            client, "gpt-4o-prod", temperature=TEMPERATURE, max_completion_tokens=MAX_TOKENS
        )
        chat = conversation("azure")
        ours = run(case.provider(), chat)
        assert ours.error is None
        assert ours.text == text == "echo #3: third question"
        assert ours.usage is not None and usage is not None
        assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
            usage.prompt_tokens,
            usage.completion_tokens,
        )
        assert ours.finish is not None and ours.finish.reason == finish == "stop"
        sdk_seen, our_seen = fake.seen
        assert our_seen.path == sdk_seen.path and our_seen.query == sdk_seen.query
        assert our_seen.body == sdk_seen.body
        assert our_seen.headers.get("api-key") == fake.api_key
        assert "authorization" not in our_seen.headers  # one credential, never both


# -- Anthropic ------------------------------------------------------------------------


def test_anthropic_sdk_and_nbconvo_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        fake.script.extend([Canned(options={"unknown_events": True})] * 2)
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        chat = conversation("anthropic")
        with client.messages.stream(
            model="claude-sonnet-5-5",
            max_tokens=MAX_TOKENS,
            system=SYSTEM,
            messages=[dict(m) for m in chat.messages],
        ) as stream:
            sdk_text = "".join(stream.text_stream)
            final = stream.get_final_message()
        ours = run(case.provider(), chat)
        assert ours.error is None
        assert ours.text == sdk_text == "echo #3: third question"
        assert ours.usage is not None
        assert ours.usage.input_tokens == final.usage.input_tokens
        assert ours.usage.output_tokens == final.usage.output_tokens
        assert final.stop_reason == "end_turn" and ours.finish is not None
        assert ours.finish.reason == "stop"
        assert any("temperature 0.3 not sent" in n for n in ours.notices)
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body  # model, max_tokens, system, messages, stream: true
        sdk_headers, our_headers = fake.seen[0].headers, fake.seen[1].headers
        for name in ("anthropic-version", "authorization"):
            assert our_headers[name] == sdk_headers[name]


def test_anthropic_sdk_sees_the_same_max_tokens_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        chat = request(case, "hello", max_tokens=2)
        final = client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=2,
            messages=[dict(m) for m in chat.messages],
            stream=True,
        )
        events = list(final)
        stop = next(e.delta.stop_reason for e in events if e.type == "message_delta")
        ours = run(case.provider(), chat)
        assert stop == "max_tokens" and ours.finish is not None
        assert ours.finish.reason == "length" and ours.finish.notice is not None
        assert "answer cut at 2 tokens" in ours.finish.notice


def test_anthropic_sdk_counts_tokens_on_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        counted = client.messages.count_tokens(
            model="claude-sonnet-5-5", system=SYSTEM, messages=[{"role": "user", "content": "hi"}]
        )
        assert counted.input_tokens > 0


def test_anthropic_sdk_raises_on_the_fakes_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        client = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=fake.base_url, max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        fake.script.append(Canned(error_after=1))
        with (
            pytest.raises(anthropic.APIStatusError),
            client.messages.stream(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            ) as stream,
        ):
            list(stream.text_stream)


# -- Gemini ---------------------------------------------------------------------------


def _genai_client(fake: Any) -> Any:
    return genai.Client(
        api_key=fake.api_key, http_options=genai_types.HttpOptions(base_url=fake.base_url)
    )


def _genai_contents(chat: ChatRequest) -> list[Any]:
    return [
        genai_types.Content(
            role="model" if m["role"] == "assistant" else "user",
            parts=[genai_types.Part(text=m["content"])],
        )
        for m in chat.messages
    ]


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "lf"])
def test_gemini_sdk_and_nbconvo_agree(crlf: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        fake.newline = "\r\n" if crlf else "\n"
        fake.script.extend([Canned(options={"thought_signature": True})] * 2)
        chat = conversation("gemini")
        config = genai_types.GenerateContentConfig(
            system_instruction=SYSTEM, temperature=TEMPERATURE, max_output_tokens=MAX_TOKENS
        )
        text, usage, finish = "", None, None
        client = _genai_client(fake)  # kept: a dropped client closes its connection pool
        for chunk in client.models.generate_content_stream(
            model="gemini-3.5-flash", contents=_genai_contents(chat), config=config
        ):
            text += chunk.text or ""
            usage = chunk.usage_metadata or usage
            finish = chunk.candidates[0].finish_reason if chunk.candidates else finish
        ours = run(case.provider(), chat)
        assert ours.error is None
        assert ours.text == text == "echo #3: third question"
        assert ours.usage is not None and usage is not None
        assert ours.usage.input_tokens == usage.prompt_token_count
        assert ours.usage.output_tokens == usage.candidates_token_count
        assert finish is not None and finish.value == "STOP" and ours.finish is not None
        assert ours.finish.reason == "stop"
        sdk_seen, our_seen = fake.seen
        assert our_seen.path == sdk_seen.path and our_seen.query == sdk_seen.query
        assert our_seen.body == sdk_seen.body
        assert our_seen.headers["x-goog-api-key"] == sdk_seen.headers["x-goog-api-key"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"finish": "SAFETY"}, ("SAFETY", "content_filter")),
        (
            {"finish": "RECITATION", "options": {"finish_only": True}},
            ("RECITATION", "content_filter"),
        ),
        ({"options": {"block": "PROHIBITED_CONTENT"}}, (None, "content_filter")),
    ],
)
def test_gemini_sdk_sees_the_same_stops(
    options: dict[str, Any], expected: tuple[str | None, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        fake.script.extend([Canned(**options)] * 2)
        chat = request(case, "hello")
        finish, blocked = None, None
        client = _genai_client(fake)
        for chunk in client.models.generate_content_stream(
            model="gemini-3.5-flash", contents=_genai_contents(chat)
        ):
            if chunk.candidates and chunk.candidates[0].finish_reason:
                finish = chunk.candidates[0].finish_reason.value
            if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
                blocked = chunk.prompt_feedback.block_reason.value
        ours = run(case.provider(), chat)
        assert finish == expected[0]
        assert ours.finish is not None and ours.finish.reason == expected[1]
        assert ours.finish.notice is not None
        assert (blocked or finish or "") in ours.finish.notice


def test_gemini_sdk_raises_on_the_fakes_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.genai import errors

    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        client = genai.Client(
            api_key="AIzaWrongKey1234567890",
            http_options=genai_types.HttpOptions(base_url=fake.base_url),
        )
        with pytest.raises(errors.ClientError) as caught:
            list(client.models.generate_content_stream(model="gemini-3.5-flash", contents="hi"))
        assert caught.value.code == 400 and "API key not valid" in str(caught.value)
        client = _genai_client(fake)
        counted = client.models.count_tokens(model="gemini-3.5-flash", contents="hi")
        assert counted.total_tokens == 2


# -- a turn with text and an image, after three turns of history -----------------------


def _png() -> bytes:
    """A real 2×2 PNG, made here: signature, IHDR, IDAT, IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([255, 0, 0, 0, 255, 0]) for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNG = _png()
IMAGE_PROMPT = "What is in this picture?"


def image_conversation(case_name: str) -> ChatRequest:
    """Three turns of history (the first with an image of its own), then text + image."""
    from nbconvo._parts import ImagePart, TextPart

    case = BY_NAME[case_name]
    history = conversation(case_name).messages  # three user turns, two answers
    first = history[0]
    assert isinstance(first["content"], str)
    first_parts = (TextPart(first["content"]), ImagePart(PNG, "image/png"))
    last = (TextPart(IMAGE_PROMPT), ImagePart(PNG, "image/png", name="plot.png"))
    prefix, _, model = case.spec.partition(":")
    return ChatRequest(
        provider=prefix,
        model=model,
        messages=(
            {"role": "user", "content": first_parts},
            *history[1:],
            {"role": "assistant", "content": "echo #3: third question"},
            {"role": "user", "content": last},
        ),
        system=SYSTEM,
        max_tokens=MAX_TOKENS,
    )


def _data_url() -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(PNG).decode()


def _openai_sdk_messages(chat: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in chat.all_messages():
        content = m["content"]
        if not isinstance(content, str):
            content = [
                {"type": "text", "text": p.text} if p.kind == "text"
                else {"type": "image_url", "image_url": {"url": _data_url()}}
                for p in content
            ]
        out.append({"role": m["role"], "content": content})
    return out


@pytest.mark.parametrize("case_name", ["openai", "azure"])
def test_openai_sdk_sends_the_same_body_for_text_and_image_parts(
    case_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = BY_NAME[case_name]
    with case.running(monkeypatch) as fake:
        chat = image_conversation(case_name)
        if case_name == "openai":
            client: Any = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        else:
            client = openai.AzureOpenAI(azure_endpoint=fake.endpoint, api_key=fake.api_key,
                                        api_version="2024-10-21", max_retries=0)
        for _ in client.chat.completions.create(
            model=chat.model, messages=_openai_sdk_messages(chat), stream=True,
            stream_options={"include_usage": True}, max_completion_tokens=MAX_TOKENS,
        ):
            pass
        ours = run(case.provider(), chat)
        assert ours.error is None and ours.text == f"echo #4: {IMAGE_PROMPT}"
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body
        assert our_body["messages"][-1]["content"][1] == {"type": "image_url", "image_url": {"url": _data_url()}}


def test_anthropic_sdk_sends_the_same_body_for_text_and_image_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64

    case = BY_NAME["anthropic"]
    with case.running(monkeypatch) as fake:
        chat = image_conversation("anthropic")
        source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
        messages: list[dict[str, Any]] = []
        for m in chat.messages:
            content = m["content"]
            if not isinstance(content, str):
                content = [
                    {"type": "text", "text": p.text} if p.kind == "text" else {"type": "image", "source": source}
                    for p in content
                ]
            messages.append({"role": m["role"], "content": content})
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        with client.messages.stream(
            model=chat.model, max_tokens=MAX_TOKENS, system=SYSTEM, messages=messages  # type: ignore[arg-type]
        ) as stream:
            sdk_text = "".join(stream.text_stream)
        ours = run(case.provider(), chat)
        assert ours.error is None and ours.text == sdk_text == f"echo #4: {IMAGE_PROMPT}"
        sdk_body, our_body = fake.requests
        assert our_body == sdk_body
        assert our_body["messages"][-1]["content"][1] == {"type": "image", "source": source}


def test_gemini_sdk_sends_the_same_body_for_text_and_image_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = BY_NAME["gemini"]
    with case.running(monkeypatch) as fake:
        chat = image_conversation("gemini")
        contents = []
        for m in chat.messages:
            content = m["content"]
            parts = (
                [genai_types.Part(text=content)] if isinstance(content, str) else [
                    genai_types.Part(text=p.text) if p.kind == "text"
                    else genai_types.Part(inline_data=genai_types.Blob(mime_type="image/png", data=PNG))
                    for p in content
                ]
            )
            contents.append(genai_types.Content(role="model" if m["role"] == "assistant" else "user", parts=parts))
        config = genai_types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=MAX_TOKENS)
        client = _genai_client(fake)
        text = "".join(
            chunk.text or ""
            for chunk in client.models.generate_content_stream(model=chat.model, contents=contents, config=config)
        )
        ours = run(case.provider(), chat)
        assert ours.error is None and ours.text == text == f"echo #4: {IMAGE_PROMPT}"
        sdk_seen, our_seen = fake.seen
        assert our_seen.path == sdk_seen.path
        assert our_seen.body == sdk_seen.body
        assert "inlineData" in our_seen.body["contents"][-1]["parts"][1]


@pytest.mark.parametrize("spec", ["copilot", "llama"])
def test_copilot_and_the_in_process_model_refuse_an_image_before_sending(
    spec: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from nbconvo._errors import UsageError
    from nbconvo.providers import create_provider

    if spec == "copilot":
        case = BY_NAME["copilot"]
        with case.running(monkeypatch) as fake:
            chat = image_conversation("copilot")
            with pytest.raises(UsageError) as caught:
                list(case.provider().stream(chat))
            assert fake.requests == [] and not fake.seen  # nothing reached the server
    else:
        # Refused before the model file is read: not a model, and never loaded.
        not_a_model = tmp_path / "not-a-model.gguf"
        not_a_model.write_bytes(b"not a GGUF file")
        provider = create_provider(f"llama:{not_a_model}")
        chat = ChatRequest(provider="llama", model="x", messages=image_conversation("openai").messages)
        with pytest.raises(UsageError) as caught:
            list(provider.stream(chat))
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "does not take an image in a prompt" in message and "nothing was sent" in message
