"""Figures, images and files in a dialogue (issue #16), through a real shell and each
provider's loopback fake: a table at turn 1, a figure at turn 2, a fork at turn 1, and a
rerun of turn 2 after the figure changed. Every request carries exactly what its turns
stored, and for the same conversation nbconvo sends the body the official SDK sends."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._conversation import TurnOptions
from nbconvo._parts import DataPart, ImagePart
from nbconvo._tree import Turn
from nbconvo._types import ChatRequest
from tests.support.provider_cases import BY_NAME, OPENAI_KEY, run

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
genai = pytest.importorskip("google.genai")
genai_types = pytest.importorskip("google.genai.types")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

PROVIDERS = ["openai", "anthropic", "gemini"]


def chart(values: list[float]) -> Figure:
    figure = Figure(figsize=(4, 3), dpi=80)
    figure.subplots().plot(values)
    return figure


def cell(shell: InteractiveShell, source: str, cell_id: str) -> None:
    result = shell.run_cell(source, cell_id=cell_id)
    assert result.success, result.error_in_exec


@pytest.fixture(params=PROVIDERS)
def provider_shell(
    request: pytest.FixtureRequest, shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Any, InteractiveShell]]:
    case = BY_NAME[request.param]
    with case.running(monkeypatch) as fake:
        cell(shell, f"%convo model {case.spec}", "model")
        yield request.param, fake, shell


# -- what a request carries, per wire format ----------------------------------------------


def sent(provider: str, body: dict[str, Any]) -> list[tuple[str, str, list[bytes]]]:
    """Each message of a request body: (role, its text, its images' bytes)."""
    out = []
    if provider == "gemini":
        for content in body["contents"]:
            parts = content["parts"]
            text = "".join(p.get("text", "") for p in parts)
            images = [base64.urlsafe_b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]
            out.append(("assistant" if content["role"] == "model" else "user", text, images))
        return out
    for message in body["messages"]:
        if message["role"] == "system":
            continue
        content = message["content"]
        if isinstance(content, str):
            out.append((message["role"], content, []))
            continue
        text = "".join(b.get("text", "") for b in content if b["type"] == "text")
        if provider == "openai":
            urls = [b["image_url"]["url"] for b in content if b["type"] == "image_url"]
            images = [base64.b64decode(url.partition(",")[2]) for url in urls]
        else:
            images = [base64.b64decode(b["source"]["data"]) for b in content if b["type"] == "image"]
        out.append((message["role"], text, images))
    return out


def stored(turn: Turn) -> tuple[str, list[bytes]]:
    """What a turn stored for its prompt: the text with its data parts, its images."""
    from nbconvo._parts import content_text, sendable

    parts = turn.prompt_parts
    text = content_text(sendable(parts)) if parts else turn.prompt
    return text, [p.data for p in parts if isinstance(p, ImagePart)]


def assert_carries(provider: str, body: dict[str, Any], path: list[Turn], prompt: str) -> None:
    messages = sent(provider, body)
    assert len(messages) == 2 * len(path) + 1
    for turn, (role, text, images), answer in zip(path, messages[0::2], messages[1::2], strict=False):
        assert role == "user" and (text, images) == stored(turn)
        assert answer[1] == turn.answer
    assert messages[-1][1] == prompt and messages[-1][2] == []


def last_body(provider: str, fake: Any) -> dict[str, Any]:
    body: dict[str, Any] = fake.seen[-1].body
    return body


# -- the dialogue ------------------------------------------------------------------------


def test_a_figure_at_turn_2_then_a_fork_and_a_rerun_after_it_changed(
    provider_shell: tuple[str, Any, InteractiveShell],
) -> None:
    provider, fake, shell = provider_shell
    shell.user_ns["df"] = pd.DataFrame({"week": range(1, 53), "sales": [w * 3 % 17 for w in range(52)]})
    shell.user_ns["fig"] = chart([1, 3, 2])
    cell(shell, "%%turn\nHere is our data: {df}", "c1")
    cell(shell, "%%turn\nAnd the chart of it: {fig}", "c2")
    convo = nbconvo.current()
    first, second = convo.path
    assert [type(p) for p in first.prompt_parts] == [type(first.prompt_parts[0]), DataPart]
    figure_a = next(p for p in second.prompt_parts if isinstance(p, ImagePart))
    body = last_body(provider, fake)
    messages = sent(provider, body)
    assert messages[-1][2] == [figure_a.data]  # the figure, as drawn at turn 2
    assert messages[0] == ("user", stored(first)[0], [])

    shell.user_ns["fig"] = chart([9, 1, 9, 1])  # the figure changes
    cell(shell, "%convo fork 1", "c3")
    cell(shell, "%%turn\nForget the chart: what about week 10?", "c4")
    fork_path = convo.path
    assert_carries(provider, last_body(provider, fake), fork_path[:-1], "Forget the chart: what about week 10?")
    assert len(fork_path) == 2 and fork_path[0] is first

    cell(shell, "%convo switch main", "c5")
    cell(shell, "%%turn\nAnd the chart of it: {fig}", "c2")  # turn 2's cell, rerun
    rerun = convo.path[-1]
    figure_b = next(p for p in rerun.prompt_parts if isinstance(p, ImagePart))
    assert figure_b.data != figure_a.data
    assert sent(provider, last_body(provider, fake))[-1][2] == [figure_b.data]
    cell(shell, "%%turn\nSummarize.", "c6")
    assert_carries(provider, last_body(provider, fake), convo.path[:-1], "Summarize.")
    # the first version of turn 2 keeps figure A, the fork keeps no image
    assert any(
        isinstance(p, ImagePart) and p.data == figure_a.data
        for t in convo.turns
        for p in t.prompt_parts
    )


# -- the same bodies as the official SDKs -------------------------------------------------


def sdk_body(provider: str, fake: Any, chat: ChatRequest) -> dict[str, Any]:
    """The body the official SDK sends for ``chat`` (data parts already text)."""

    def blocks(content: Any, text: Any, image: Any, document: Any) -> list[Any]:
        build = {"text": lambda p: text(p.text), "image": image, "document": document}
        return [build[p.kind](p) for p in content]

    before = len(fake.seen)
    if provider == "openai":
        messages = [
            {"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else blocks(
                m["content"],
                lambda t: {"type": "text", "text": t},
                lambda p: {"type": "image_url", "image_url": {"url": p.data_url()}},
                lambda p: {"type": "file", "file": {"filename": p.name, "file_data": p.data_url()}},
            )}
            for m in chat.all_messages()
        ]
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=fake.base_url, max_retries=0)
        for _ in client.chat.completions.create(
            model=chat.model, messages=messages, stream=True, stream_options={"include_usage": True},
            max_completion_tokens=chat.max_tokens,
        ):
            pass
    elif provider == "anthropic":
        messages = [
            {"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else blocks(
                m["content"],
                lambda t: {"type": "text", "text": t},
                lambda p: {"type": "image", "source": {"type": "base64", "media_type": p.media_type, "data": p.base64()}},
                lambda p: {"type": "document", "source": {"type": "base64", "media_type": p.media_type, "data": p.base64()}},
            )}
            for m in chat.messages
        ]
        client = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
        with client.messages.stream(model=chat.model, max_tokens=chat.max_tokens, messages=messages) as stream:  # type: ignore[arg-type]
            "".join(stream.text_stream)
    else:
        contents = [
            genai_types.Content(
                role="model" if m["role"] == "assistant" else "user",
                parts=[genai_types.Part(text=m["content"])] if isinstance(m["content"], str) else blocks(
                    m["content"],
                    lambda t: genai_types.Part(text=t),
                    lambda p: genai_types.Part(inline_data=genai_types.Blob(mime_type=p.media_type, data=p.data)),
                    lambda p: genai_types.Part(inline_data=genai_types.Blob(mime_type=p.media_type, data=p.data)),
                ),
            )
            for m in chat.messages
        ]
        client = genai.Client(api_key=fake.api_key, http_options=genai_types.HttpOptions(base_url=fake.base_url))
        config = genai_types.GenerateContentConfig(max_output_tokens=chat.max_tokens)
        for _ in client.models.generate_content_stream(model=chat.model, contents=contents, config=config):
            pass
    assert len(fake.seen) == before + 1
    return last_body(provider, fake)


def test_a_data_part_an_image_and_a_pdf_go_as_the_official_sdks_send_them(
    provider_shell: tuple[str, Any, InteractiveShell], tmp_path: Path
) -> None:
    provider, fake, shell = provider_shell
    shell.user_ns["df"] = pd.DataFrame({"x": [1, 2, 3], "y": [2.5, None, 7.0]})
    shell.user_ns["fig"] = chart([1, 4, 9])
    report = tmp_path / "report.pdf"
    chart([2, 2, 3]).savefig(report, format="pdf")
    cell(shell, f"%%turn --attach {report}\nCompare {{df}} with {{fig}} and the report", "c1")
    footer = shell.display_pub.plain()[-1]
    assert footer.endswith(" · report.pdf: PDF, 1 page")
    convo = nbconvo.current()
    convo.cache = False  # the same bodies with caching: tests/unit/test_prompt_cache.py
    chat = convo.request("Which point is missing?", TurnOptions(max_tokens=300))
    assert any(isinstance(m["content"], tuple) for m in chat.messages)  # the image went as a part
    ours = run(convo.provider(convo.model_spec()), chat)
    assert ours.error is None
    our_body = fake.seen[-1].body
    assert sdk_body(provider, fake, chat) == our_body
    first = sent(provider, our_body)[0]
    assert "`df`: pandas DataFrame, 3 rows × 2 columns" in first[1]
    assert len(first[2]) == (2 if provider == "gemini" else 1)  # Gemini: the PDF is inlineData too
    documents = [p for m in chat.messages if not isinstance(m["content"], str) for p in m["content"] if p.kind == "document"]
    assert [d.data for d in documents] == [report.read_bytes()]


# -- files ------------------------------------------------------------------------------


def test_attached_files_an_image_and_code(
    convo_shell: InteractiveShell, fake_openai: Any, tmp_path: Path
) -> None:
    plot = tmp_path / "plot.png"
    chart([5, 4, 6]).savefig(plot, format="png")
    code = tmp_path / "clean.py"
    code.write_text("def clean(df):\n    return df.dropna()\n")
    cell(convo_shell, f"%%turn --attach {plot} -a {code}\nWhy does the plot dip?", "c1")
    content = fake_openai.requests[-1]["messages"][-1]["content"]
    assert [b["type"] for b in content] == ["text", "image_url", "text"]
    assert content[0]["text"] == "Why does the plot dip?"
    assert base64.b64decode(content[1]["image_url"]["url"].partition(",")[2]) == plot.read_bytes()
    assert content[2]["text"] == "`clean.py`:\n\n```python\ndef clean(df):\n    return df.dropna()\n```"
    footer = convo_shell.display_pub.plain()[-1]
    assert footer.endswith(" · plot.png: image 320 × 240 px · clean.py: file, 2 lines → 19 tokens")
