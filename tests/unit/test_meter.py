"""The context meter, over-window refusal, goal and budget, summarize, compact, compare."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._conversation import Conversation
from nbconvo._meter import TokenLedger
from nbconvo._tokens import PER_MESSAGE, REPLY_PRIMER, count_text
from nbconvo._tree import Turn
from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import FAKE_KEY, one_line_error, turn


def add(convo: Conversation, prompt: str, answer: str, usage: tuple[int, int] | None = None) -> Turn:
    tree = convo.tree
    turn = Turn(id=tree.new_turn_id(), parent=None, prompt=prompt, answer=answer,
                input_tokens=usage[0] if usage else 0, output_tokens=usage[1] if usage else 0,
                usage_exact=usage is not None)
    return tree.append(turn)


def test_known_token_counts() -> None:
    assert count_text("hello world") == 2  # cl100k_base
    assert count_text("The quick brown fox jumps over the lazy dog.") == 10
    assert count_text("") == 0


def test_meter_estimates_system_path_and_pending() -> None:
    convo = Conversation(model="openai:gpt-test", window=1000, system="Be brief.")
    add(convo, "hello world", "hi there")
    meter = convo.meter_at(convo.tree.head, pending="what next")
    expected = (REPLY_PRIMER + PER_MESSAGE + count_text("Be brief.")
                + 2 * PER_MESSAGE + count_text("hello world") + count_text("hi there")
                + PER_MESSAGE + count_text("what next"))
    assert meter.used == expected and not meter.exact and meter.window == 1000
    assert meter.state == "ok" and "≈" in meter.describe()


def test_meter_reconciles_with_reported_usage() -> None:
    convo = Conversation(model="openai:gpt-test", window=1000, system="Be brief.")
    add(convo, "one", "uno")
    add(convo, "two", "dos", usage=(400, 20))  # the provider's count covers everything so far
    assert convo.meter.used == 420 and convo.meter.exact
    add(convo, "three", "tres")  # estimated on top of the exact anchor
    assert convo.meter.used == 420 + 2 * PER_MESSAGE + count_text("three") + count_text("tres")
    assert not convo.meter.exact


@pytest.mark.parametrize(("used", "state"), [(799, "ok"), (800, "warn"), (1000, "warn"), (1001, "over")])
def test_meter_states(used: int, state: str) -> None:
    convo = Conversation(model="openai:gpt-test", window=1000)
    add(convo, "x", "y", usage=(used - 1, 1))
    assert convo.meter.state == state


def test_window_unknown_is_said() -> None:
    meter = Conversation(model="openai:some-unknown-model").meter
    assert meter.window is None and meter.state == "unknown" and "window unknown" in meter.describe()


def test_ledger_counts_each_turn_once() -> None:
    convo = Conversation(model="openai:gpt-test", window=10**6)
    for i in range(50):
        add(convo, f"prompt {i}", f"answer {i}")
        _ = convo.meter
    ledger: TokenLedger = convo._ledger
    assert len(ledger.own) == 50 and len(ledger.total) == 50


def test_offline_fallbacks_never_touch_the_network(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    code = "from nbconvo._tokens import count_text; print(count_text('hello world'))"
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "2", out.stderr
    assert time.monotonic() - started < 30
    # tiktoken copies the bundled table into its cache; nothing else arrives there.
    import hashlib

    cl100k = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == cl100k for p in tmp_path.iterdir())
    # Without tiktoken at all: a chars/4 estimate, never an error.
    code = ("import sys; sys.modules['tiktoken'] = None\n"
            "from nbconvo._tokens import count_text; print(count_text('abcdefgh'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "2", out.stderr




def test_over_window_is_refused_before_sending(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    turn(convo_shell, "one", "c1")
    assert convo_shell.run_cell("%convo window 40").success
    sent = len(fake_openai.requests)
    text = one_line_error(convo_shell, "%%turn\n" + "word " * 60, capsys)
    assert "ContextWindowExceeded" in text and "but the window of openai:gpt-test is 40" in text
    assert "%convo compact" in text
    assert len(fake_openai.requests) == sent and len(nbconvo.current().turns) == 1


def test_footer_shows_meter_goal_and_budget_with_notice(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    assert convo_shell.run_cell("%convo goal A playbook").success
    assert convo_shell.run_cell("%convo budget 2").success
    assert convo_shell.run_cell("%convo window 10000").success
    turn(convo_shell, "one", "c1")
    footer = convo_shell.display_pub.plain()[-1]
    assert "exchange 1 of 2" in footer and "goal: A playbook" in footer and "/10,000 (" in footer
    turn(convo_shell, "two", "c2")
    assert "past the budget" not in convo_shell.display_pub.plain()[-1]
    turn(convo_shell, "three", "c3")
    footer = convo_shell.display_pub.plain()[-1]
    assert "exchange 3 of 2" in footer and "past the budget of 2 exchanges: time to wrap up" in footer
    assert "A playbook" in fake_openai.requests[-1]["messages"][0]["content"]


def test_summarize_changes_nothing(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    turn(convo_shell, "My name is Ada", "c1")
    turn(convo_shell, "I bake bread", "c2")
    convo = nbconvo.current()
    before = (dict(convo.tree.turns), dict(convo.tree.branches), convo.branch)
    fake_openai.script.append(Canned(pieces=["- Name: Ada\n", "- Bakes bread"]))
    assert convo_shell.run_cell("%convo summarize --into notes").success
    assert convo_shell.user_ns["notes"] == "- Name: Ada\n- Bakes bread"
    assert "Summarize the key decisions" in fake_openai.requests[-1]["messages"][-1]["content"]
    assert (dict(convo.tree.turns), dict(convo.tree.branches), convo.branch) == before


def test_compact_keeps_originals_and_shrinks_the_request(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    for i, text in enumerate(["My name is Ada " + "and I like long stories " * 20, "two " * 30, "three"]):
        turn(convo_shell, text, f"c{i}")
    convo = nbconvo.current()
    before = convo.meter.used
    fake_openai.script.append(Canned(pieces=["- The user is Ada."]))
    assert convo_shell.run_cell("%convo compact --keep 1").success
    assert convo.branch == "compact-1"
    path = convo.path
    assert [t.kind for t in path] == ["summary", "turn"] and path[1].prompt == "three"
    assert path[0].answer == "- The user is Ada."
    assert [t.prompt for t in convo.tree.ancestry(convo.branches["main"])][2] == "three"
    assert len(convo.turns) == 5  # 3 originals + summary + 1 copy
    assert convo.meter.used < before
    turn(convo_shell, "What is my name?", "c9")
    body = fake_openai.requests[-1]
    assert "Summary of the earlier conversation:\n- The user is Ada." in body["messages"][0]["content"]
    assert [m["content"] for m in body["messages"][1:]] == ["three", "echo #3: three", "What is my name?"]


def test_auto_compact_is_announced(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    for i in range(4):
        turn(convo_shell, "padding " * 40, f"c{i}")
    assert convo_shell.run_cell("%convo window 300").success
    assert convo_shell.run_cell("%config ConvoMagics.auto_compact = 0.5").success
    assert convo_shell.run_cell("%config ConvoMagics.auto_compact_keep = 1").success
    fake_openai.script.append(Canned(pieces=["- padding only"]))
    try:
        turn(convo_shell, "next", "c9")
    finally:
        convo_shell.run_cell("%config ConvoMagics.auto_compact = 0.0")
    assert nbconvo.current().branch == "compact-1"
    assert "compacted into compact-1" in convo_shell.display_pub.plain()[-1]


def test_compare_branches_side_by_side(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    turn(convo_shell, "start", "c1")
    turn(convo_shell, "outreach", "c2")
    assert convo_shell.run_cell("%convo fork 1 --name pricing").success
    fake_openai.script.append(Canned(pieces=['pricing <img src=x onerror="alert(1)"> **tiers**']))
    turn(convo_shell, "pricing", "c3")
    convo_shell.display_pub.reset()
    assert convo_shell.run_cell("%convo compare main pricing").success
    data = convo_shell.display_pub.outputs[-1]["data"]
    html = data["text/html"]
    assert "<th>main</th><th>pricing</th>" in html and "after turn 1" in html
    assert "echo #2: outreach" in html and "<strong>tiers</strong>" in html
    assert "<img" not in html and "&lt;img" in html
    assert "== pricing" in data["text/plain"]


BAD = [
    ("%convo budget 0", "budget must be at least 1 exchange"),
    ("%convo budget -2", "budget must be at least 1 exchange"),
    ("%convo window lots", "window needs a whole number of tokens, not 'lots'"),
    ("%convo window 0", "window must be a positive number of tokens"),
    ("%convo compare main ghost", "no branch named 'ghost'"),
    ("%convo compact", "nothing to compact: the active path is empty"),
    ("%convo summarize", "nothing to summarize"),
    ("%convo compact --keep x", "invalid int value: 'x'"),
    ("%convo summarize --into 9x", "--into needs a Python variable name"),
]


@pytest.mark.parametrize(("source", "message"), BAD)
def test_bad_input(convo_shell: InteractiveShell, fake_openai: FakeOpenAI,
                   capsys: pytest.CaptureFixture[str], source: str, message: str) -> None:
    convo = nbconvo.current()
    before = (convo.budget, convo.window, dict(convo.tree.branches))
    assert message in one_line_error(convo_shell, source, capsys)
    assert (convo.budget, convo.window, dict(convo.tree.branches)) == before
    assert fake_openai.requests == []


def test_compact_keep_too_large(convo_shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    turn(convo_shell, "one", "c1")
    assert "--keep 2 keeps all 1 turn(s)" in one_line_error(convo_shell, "%convo compact --keep 2", capsys)
    assert nbconvo.current().branches == {"main": 1}


def test_model_encoding_only_from_the_local_cache(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nbconvo._tokens import encoding_for

    assert encoding_for("openai:gpt-5.5") == "o200k_base"
    assert encoding_for("llama:qwen2.5-coder-0.5b") == "cl100k_base"
    assert encoding_for(None) == "cl100k_base"
    # o200k_base is not in the (empty) cache: the offline cl100k table counts, no download.
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    code = "from nbconvo._tokens import count_text; print(count_text('hello world', 'o200k_base'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "2", out.stderr
    import hashlib

    cl100k = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == cl100k for p in tmp_path.iterdir())


def test_meter_recounts_when_the_model_changes() -> None:
    convo = Conversation(model="llama:x", window=1000)
    add(convo, "hello world", "hi")
    assert convo._ledger.encoding == "cl100k_base"
    convo.model = "openai:gpt-5.5"
    _ = convo.meter
    assert convo._ledger.encoding == "o200k_base"


def test_a_prompt_whose_bound_overflows_but_tokens_fit_is_sent(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    """The window check first bounds the prompt by its bytes; when the bound does not
    fit, it counts exactly and sends whatever fits."""
    turn(convo_shell, "one", "c1")
    convo = nbconvo.current()
    prompt = "a" * 400  # 400 bytes, far fewer tokens
    exact = convo.meter_at(convo.tree.head, pending=prompt).used
    assert exact + 300 < len(prompt)
    assert convo_shell.run_cell(f"%convo window {exact}").success
    turn(convo_shell, prompt, "c2")
    assert fake_openai.requests[-1]["messages"][-1]["content"] == prompt
    assert convo_shell.run_cell(f"%convo window {exact - 1}").success
    assert not convo_shell.run_cell("%%turn\n" + prompt).success  # one token over: refused
    assert len(convo.turns) == 2


def test_a_turn_with_reported_usage_never_loads_the_tokenizer(fake_openai: FakeOpenAI) -> None:
    """The footer and the window check need no tokenizer when the provider reports
    usage, so the first turn does not wait ~0.2 s for tiktoken's table."""
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'nbconvo')\n"
        "for prompt in ('one', 'two'):\n"
        "    assert ip.run_cell('%%turn\\n' + prompt).success\n"
        "print('TIKTOKEN', 'tiktoken' in sys.modules)\n"
    )
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_openai.base_url,
           "NBCONVO_MODEL": "openai:gpt-test", "NBCONVO_AUTOSAVE": "off"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert "TIKTOKEN False" in out.stdout, out.stdout + out.stderr
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    ("prefix", "server", "window"),
    [
        ("vllm", {"model_fields": {"max_model_len": 4096}}, 4096),
        ("llamacpp", {"props": {"default_generation_settings": {"n_ctx": 2048}}}, 2048),
        ("openai-compatible", {"props": {"default_generation_settings": {"n_ctx": 8192}}}, 8192),
        ("openai-compatible", {}, None),  # says nothing: unknown, as before
        ("ollama", {"model_fields": {"max_model_len": 4096}}, None),  # not asked
    ],
)
def test_local_servers_tell_the_meter_their_window(
    shell: InteractiveShell, prefix: str, server: dict, window: int | None  # type: ignore[type-arg]
) -> None:
    with FakeOpenAI(api_key=None, **server) as fake:
        assert shell.run_cell(f"%convo model {prefix}:fake-model --base-url {fake.base_url}").success
        turn(shell, "hello", "c1")
        convo = nbconvo.current()
        assert convo.context_window() == window
        footer = shell.display_pub.plain()[-1]
        assert (f"/{window:,} (" in footer) if window else ("context" not in footer)
        convo.context_window()  # asked once per provider, not at every reading
        assert len([g for g in fake.gets if g.endswith(("/models", "/props"))]) <= 2


def test_openai_is_never_asked_for_a_window(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    fake_openai.model_fields = {"max_model_len": 4096}  # OpenAI's list has no such field
    turn(convo_shell, "hello", "c1")
    assert nbconvo.current().context_window() is None and fake_openai.gets == []


def test_a_discovered_window_refuses_what_does_not_fit(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI(api_key=None, model_fields={"max_model_len": 40}) as fake:
        assert shell.run_cell(f"%convo model vllm:fake-model --base-url {fake.base_url}").success
        text = one_line_error(shell, "%%turn\n" + "word " * 60, capsys)
        assert "but the window of vllm:fake-model is 40" in text and not fake.requests


def test_a_cassette_keeps_the_discovered_window_for_replay(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    cassette = tmp_path / "c.jsonl"
    with FakeOpenAI(api_key=None, model_fields={"max_model_len": 4096}) as fake:
        url = fake.base_url
        assert shell.run_cell(f"%convo replay {cassette} --mode record").success
        assert shell.run_cell(f"%convo model vllm:fake-model --base-url {url}").success
        turn(shell, "hello", "c1")
    assert shell.run_cell("%convo reset").success
    assert shell.run_cell(f"%convo replay {cassette} --mode replay").success
    turn(shell, "hello", "c1")  # the server is gone: the answer and the window come from the cassette
    assert nbconvo.current().context_window() == 4096
    assert "/4,096 (" in shell.display_pub.plain()[-1]


def test_cache_reads_and_the_first_token_time_reach_the_turn_footer_and_meter() -> None:
    """A provider's usage with tokens read from a cache (a prompt cache, or the local
    model's reused prefix) is kept in the turn and said in its footer; the time to the
    first token is kept too (shown by `%convo meter`, not the footer: a replay's time
    differs from the recording's)."""
    from collections.abc import Iterator

    from nbconvo._conversation import Conversation
    from nbconvo._render import footer_text
    from nbconvo._types import ChatRequest, Finish, ProviderEvent, Usage

    class Cached:
        name = "llama"

        def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
            yield "an answer"
            yield Usage(4380, 3, cached_input_tokens=4112)
            yield Finish("stop")

    for prefix, said in (("llama", "reused 4,112 of 4,380 prompt tokens"),
                         ("openai", "4,112 of 4,380 prompt tokens from cache")):  # fmt: skip
        convo = Conversation(model=f"{prefix}:m")
        convo._providers[(f"{prefix}:m", None)] = Cached()  # type: ignore[assignment]
        turn = convo.ask("hello")
        assert (turn.cached_tokens, turn.input_tokens) == (4112, 4380)
        assert turn.first_token_s > 0
        footer = footer_text(convo, turn)
        assert said in footer and "first token" not in footer
