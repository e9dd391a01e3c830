"""A reasoning model's thinking (#18) as a user sees it through a real shell: streamed
into a section above the answer, left collapsed when the answer is done, kept in the turn
as a reasoning part and sent back with the history."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._parts import ReasoningPart
from nbconvo._types import ChatRequest, Finish, ProviderEvent, ThinkingDelta, Usage


class Thinker:
    name = "anthropic"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        self.requests.append(request)
        for piece in ("First, ", "<b>weigh</b> ", "the options."):
            yield ThinkingDelta(piece)
        yield ReasoningPart(
            "First, <b>weigh</b> the options.", opaque="sig-1", provider="anthropic"
        )
        yield "The answer is **42**."
        yield Usage(20, 30, reasoning_tokens=12)
        yield Finish("stop")


def test_thinking_streams_above_the_answer_and_stays_collapsed(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbconvo._display as display

    sent: list[str] = []
    original = display._send

    def spy(bundle: dict[str, str], display_id: str, *, new: bool = False) -> None:
        sent.append(bundle["text/html"])
        original(bundle, display_id, new=new)

    monkeypatch.setattr(display, "_send", spy)
    assert shell.run_cell("%convo model anthropic:claude-test").success
    convo = nbconvo.current()
    thinker = Thinker()
    convo._providers[("anthropic:claude-test", None)] = thinker  # type: ignore[assignment]
    shell.display_pub.reset()
    assert shell.run_cell("%%turn\nWhat is the answer?", cell_id="c1").success
    html = [h for h in shell.display_pub.html() if "nbconvo-thinking" in h]
    final = html[-1]
    assert final.startswith('<details class="nbconvo-thinking"><summary>Thinking</summary>')
    assert "First, &lt;b&gt;weigh&lt;/b&gt; the options." in final  # model text stays text
    assert "<strong>42</strong>" in final
    assert any(h.startswith('<details class="nbconvo-thinking" open>') for h in sent)  # streaming
    turn = convo.head
    assert turn is not None and turn.answer == "The answer is **42**."
    assert turn.answer_parts[0] == ReasoningPart(
        "First, <b>weigh</b> the options.", opaque="sig-1", provider="anthropic"
    )
    assert turn.billed["reasoning"] == 12
    footer = next(p for p in shell.display_pub.plain() if p.startswith("turn 1 "))
    assert "20 → 30 tokens (12 reasoning)" in footer
    assert shell.run_cell("%%turn\nAnd why?", cell_id="c2").success
    sent = thinker.requests[-1].messages[1]["content"]
    assert isinstance(sent, tuple) and isinstance(sent[0], ReasoningPart)  # sent back
