"""%%turn and %convo through a real InteractiveShell against a loopback OpenAI server."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._display import StreamingMarkdown
from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import FAKE_KEY, kernel_started_with, notebook_outputs, one_line_error


def run(shell: InteractiveShell, source: str, cell_id: str | None = None):  # type: ignore[no-untyped-def]
    return shell.run_cell(source, cell_id=cell_id)


def turn(shell: InteractiveShell, text: str, cell_id: str | None = None, opts: str = ""):  # type: ignore[no-untyped-def]
    return run(shell, f"%%turn {opts}\n{text}", cell_id)


def snapshot(shell: InteractiveShell) -> object:
    convo = nbconvo.current()
    return copy.deepcopy((convo.tree, convo.model, convo.system, convo.goal, convo.budget))


def test_turn_streams_markdown_and_footer(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    pub = convo_shell.display_pub
    pub.reset()
    result = turn(convo_shell, "Hello there", "c1")
    assert result.success, result.error_in_exec
    plain, html = pub.plain(), pub.html()
    assert plain[0] == "echo #1: Hello there" and "<p>echo #1: Hello there</p>" in html[0]
    assert plain[1].startswith("turn 1 · main · openai:gpt-test · ") and "tokens" in plain[1]
    assert html[1].startswith('<div class="nbconvo-footer mathjax_ignore tex2jax_ignore"><sub>turn 1 · main')
    assert all("text/markdown" not in output["data"] for output in pub.outputs)
    assert fake_openai.requests[0]["messages"] == [{"role": "user", "content": "Hello there"}]
    assert fake_openai.headers_seen[0]["authorization"] == f"Bearer {FAKE_KEY}"


def test_history_fork_and_rerun(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    assert turn(convo_shell, "one", "c1").success
    assert turn(convo_shell, "two", "c2").success
    assert turn(convo_shell, "three", "c3").success
    assert [m["content"] for m in fake_openai.requests[-1]["messages"]] == [
        "one",
        "echo #1: one",
        "two",
        "echo #2: two",
        "three",
    ]
    assert run(convo_shell, "%convo fork 1 --name pricing").success
    assert turn(convo_shell, "pricing?", "c4").success
    assert [m["content"] for m in fake_openai.requests[-1]["messages"]] == [
        "one",
        "echo #1: one",
        "pricing?",
    ]
    convo = nbconvo.current()
    assert convo.branch == "pricing" and [t.prompt for t in convo.path] == ["one", "pricing?"]
    # Rerun the last cell: version 2.2 of the pricing branch's turn 2... it is the 3rd child of turn 1
    assert turn(convo_shell, "pricing again?", "c4").success
    head = convo.head
    assert head is not None and convo.tree.label(head.id) == "2.3"
    assert any(t.prompt == "pricing?" for t in convo.turns)  # the old answer stays in the tree
    assert run(convo_shell, "%convo switch main").success
    assert [t.prompt for t in convo.path] == ["one", "two", "three"]


def test_rerun_last_cell_makes_version_n_2(convo_shell: InteractiveShell) -> None:
    assert turn(convo_shell, "first", "a").success
    assert turn(convo_shell, "second", "b").success
    assert turn(convo_shell, "second, better", "b").success
    convo = nbconvo.current()
    assert [t.prompt for t in convo.path] == ["first", "second, better"]
    assert convo.tree.label(convo.tree.head) == "2.2"
    assert convo.tree.label(2) == "2.1" and convo.tree.turns[2].answer == "echo #2: second"
    assert convo_shell.display_pub.plain()[-1].startswith("turn 2.2 · main")


def test_id_option_stands_in_for_a_cell_id(convo_shell: InteractiveShell) -> None:
    assert turn(convo_shell, "a", None, "--id intro").success
    assert turn(convo_shell, "a, again", None, "--id intro").success
    convo = nbconvo.current()
    assert len(convo.path) == 1 and convo.tree.label(convo.tree.head) == "1.2"
    assert turn(convo_shell, "no id", None).success
    assert turn(convo_shell, "no id again", None).success
    assert len(convo.path) == 3  # without an id every run appends


def test_interpolation_raw_and_out(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    convo_shell.user_ns["product_name"] = "Acme"
    convo_shell.user_ns["cfg"] = {"tier": ["gold"]}
    assert turn(
        convo_shell,
        'Signals in {product_name} for {cfg["tier"][0]} and {"json": {"a": 1}}',
        "c1",
        "-o answer",
    ).success
    assert fake_openai.requests[-1]["messages"][-1]["content"] == (
        'Signals in Acme for gold and {"json": {"a": 1}}'
    )
    assert convo_shell.user_ns["answer"].startswith("echo #1: Signals in Acme")
    assert turn(convo_shell, "literal {product_name}", "c2", "--raw").success
    assert fake_openai.requests[-1]["messages"][-1]["content"] == "literal {product_name}"


def test_options_reach_the_request(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    assert turn(convo_shell, "hi", "c1", "-t 0.2 --max-tokens 50 --no-stream").success
    body = fake_openai.requests[-1]
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 50
    assert "max_tokens" not in body  # deprecated upstream for openai:
    assert body["stream_options"] == {"include_usage": True}


def test_fork_option_inline(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    assert turn(convo_shell, "one", "c1").success
    assert turn(convo_shell, "two", "c2").success
    assert turn(convo_shell, "alt two", "c3", "--fork 1").success
    convo = nbconvo.current()
    assert convo.branch == "fork-1" and [t.prompt for t in convo.path] == ["one", "alt two"]


def test_system_goal_and_inspect(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    assert run(convo_shell, "%convo system You're terse. Don't ramble.").success
    assert run(convo_shell, "%convo goal Reduce churn in 4 exchanges").success
    convo_shell.display_pub.reset()
    assert run(convo_shell, "%convo inspect What next").success
    shown = convo_shell.display_pub.outputs[-1]["data"]["text/plain"]
    assert (
        "You're terse. Don't ramble." in shown and "Reduce churn" in shown and "What next" in shown
    )
    assert turn(convo_shell, "go", "c1").success
    system = fake_openai.requests[-1]["messages"][0]
    assert system["role"] == "system" and "Reduce churn" in system["content"]
    # inspect shows what the provider's own request builder sends: the very body
    assert run(convo_shell, "%convo inspect and then what").success
    shown = json.loads(convo_shell.display_pub.outputs[-1]["data"]["text/plain"])
    assert turn(convo_shell, "and then what", "c2").success
    assert shown == {"POST": fake_openai.base_url + "/chat/completions", "body": fake_openai.requests[-1]}


def test_named_conversations(convo_shell: InteractiveShell, fake_openai: FakeOpenAI) -> None:
    assert turn(convo_shell, "in default", "c1").success
    assert run(convo_shell, "%convo new side").success
    assert turn(convo_shell, "in side", "c2").success
    assert fake_openai.requests[-1]["messages"] == [{"role": "user", "content": "in side"}]
    assert turn(convo_shell, "to default", "c3", "-c default").success
    assert len(fake_openai.requests[-1]["messages"]) == 3
    assert run(convo_shell, "%convo use default").success
    assert nbconvo.current().name == "default" and len(nbconvo.current().path) == 2
    assert run(convo_shell, "%convo list").success
    assert "side" in convo_shell.display_pub.plain()[-1]


def test_undo_reset_history_show_branches(convo_shell: InteractiveShell) -> None:
    assert turn(convo_shell, "one", "c1").success
    assert turn(convo_shell, "two", "c2").success
    assert run(convo_shell, "%convo undo").success
    convo = nbconvo.current()
    assert [t.prompt for t in convo.path] == ["one"] and len(convo.turns) == 2
    for line in ("%convo history", "%convo show 1", "%convo show #2", "%convo branches", "%convo"):
        convo_shell.display_pub.reset()
        assert run(convo_shell, line).success, line
        assert convo_shell.display_pub.outputs, line
    assert run(convo_shell, "%convo reset").success
    assert convo.path == [] and len(nbconvo._session.SESSION.archived) == 1


def test_help_is_generated(shell: InteractiveShell) -> None:
    doc = shell.find_line_magic("convo").__doc__
    for command in ("model", "fork", "switch", "branches", "history", "inspect", "undo", "reset"):
        assert command in doc
    assert "--temperature" in shell.find_cell_magic("turn").__doc__


BAD_INPUT = [
    ("%convo frobnicate", "invalid choice: 'frobnicate'"),
    ("%convo fork 9", "turn 9 is out of range: the active path has 1 turn(s) (use 0–1)"),
    ("%convo fork x", "argument n: invalid int value: 'x'"),
    ("%convo fork 1 --name main", "branch 'main' exists already"),
    ("%convo switch nowhere", "no branch named 'nowhere': the branches are main"),
    ("%convo switch #99", "there is no turn #99"),
    ("%convo model nope:thing", "unknown provider 'nope'"),
    ("%convo model gpt-5", "bad model 'gpt-5': write PROVIDER:MODEL"),
    ("%convo use ghost", "no conversation named 'ghost'"),
    ("%convo budget 0", "budget must be at least 1 exchange, not 0"),
    ("%convo budget -3", "budget must be at least 1 exchange, not -3"),
    ("%convo budget lots", "budget needs a whole number"),
    ("%convo fork 'unbalanced", "could not read the arguments"),
    ("%convo show 7", "turn 7 is out of range"),
    ("%%turn\n   \n", "the turn is empty"),
    ("%%turn --fork 5\nhello", "turn 5 is out of range"),
    ("%%turn --bogus\nhello", "unrecognized arguments: --bogus"),
    ("%%turn -t hot\nhello", "invalid float value: 'hot'"),
    ("%%turn -o 1x\nhello", "-o/--out needs a Python variable name"),
    ("%%turn --max-tokens 0\nhello", "--max-tokens must be a positive whole number"),
    ("%%turn -m nope:x\nhello", "unknown provider 'nope'"),
    ("%%turn -c ghost\nhello", "no conversation named 'ghost'"),
]


@pytest.mark.parametrize(("source", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_changes_nothing(
    convo_shell: InteractiveShell,
    fake_openai: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
    source: str,
    message: str,
) -> None:
    assert turn(convo_shell, "one", "c1").success
    before = snapshot(convo_shell)
    sent = len(fake_openai.requests)
    capsys.readouterr()
    result = run(convo_shell, source, "bad")
    assert not result.success
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert message in text
    assert len(text.splitlines()) == 1, text  # one line, no traceback
    assert snapshot(convo_shell) == before
    assert len(fake_openai.requests) == sent


def test_missing_key_names_the_variable(
    shell: InteractiveShell,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    assert run(shell, "%convo model openai:gpt-test").success
    capsys.readouterr()
    assert not turn(shell, "hello", "c1").success
    text = capsys.readouterr().out.strip()
    assert "set the environment variable OPENAI_API_KEY" in text and len(text.splitlines()) == 1
    assert nbconvo.current().turns == [] and fake_openai.requests == []


def test_wrong_key_is_one_line_without_the_key(
    shell: InteractiveShell,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-1234567890abcdef")
    assert run(shell, "%convo model openai:gpt-test").success
    capsys.readouterr()
    assert not turn(shell, "hello", "c1").success
    text = capsys.readouterr().out.strip()
    assert "rejected the API key: set OPENAI_API_KEY" in text
    assert "sk-wrong" not in text and len(text.splitlines()) == 1
    assert nbconvo.current().turns == []


def test_no_model_anywhere_is_a_clear_error(
    shell: InteractiveShell,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    kernel_started_with(  # no local model in that cache
        monkeypatch, NBCONVO_MODEL=None, NBCONVO_LOCAL_MODEL=None, NBCONVO_CACHE=str(tmp_path)
    )
    capsys.readouterr()
    assert not turn(shell, "hello").success
    text = capsys.readouterr().out.strip()
    assert (
        "no model chosen: run `%convo model PROVIDER:MODEL`" in text and len(text.splitlines()) == 1
    )


def test_midstream_failure_keeps_partial_as_error_turn(
    convo_shell: InteractiveShell,
    fake_openai: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_openai.script.append(Canned(pieces=["partial ", "answer ", "never"], error_after=2))
    capsys.readouterr()
    assert not turn(convo_shell, "hello", "c1").success
    text = capsys.readouterr().out
    assert "partial answer is kept as turn 1 (error)" in text
    head = nbconvo.current().head
    assert head is not None and head.status == "error" and head.answer == "partial answer "
    assert turn(convo_shell, "next", "c2").success  # the next turn works
    assert nbconvo.current().tree.label(nbconvo.current().tree.head) == "2"


def test_raw_html_in_answers_is_neutralized(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    evil = 'Hi <img src=x onerror="alert(1)"> and <script>alert(2)</script> **bold**'
    fake_openai.script.append(Canned(pieces=[evil]))
    convo_shell.display_pub.reset()
    assert turn(convo_shell, "hello", "c1").success
    shown = convo_shell.display_pub.html()[0]
    assert "<img" not in shown and "<script" not in shown and "<strong>bold</strong>" in shown
    assert "&lt;img src=x onerror=\"alert(1)\"&gt;" in shown  # shown as text
    assert convo_shell.display_pub.plain()[0] == evil


def test_stream_updates_are_throttled() -> None:
    now = [0.0]
    output = StreamingMarkdown(max_rate=20.0, clock=lambda: now[0], cpu=lambda: 0.0)
    with notebook_outputs():
        output.start()
        for _ in range(10_000):  # 10,000 tokens over 2 seconds of fake time
            now[0] += 0.0002
            output.feed("x")
        output.finish()
    assert output.updates <= 2 * 20 + 1
    assert output.updates >= 30  # it does stream, not only at the end


def test_load_ext_is_light() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'nbconvo')\n"
        "ip.run_cell('%convo branches')\n"
        "heavy = [m for m in ('httpx', 'httpx_sse', 'tiktoken', 'anywidget', 'llama_cpp', 'nbclient') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "assert 'convo' in ip.magics_manager.magics['line']\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_parsed_arguments_are_cached_as_copies_and_errors_stay_errors(
    convo_shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbconvo._magics import ConvoMagics, _parse

    first = _parse(ConvoMagics.turn, "-o answer --max-tokens 5")
    first.out, first.max_tokens = "changed", 99  # a caller's change does not leak
    again = _parse(ConvoMagics.turn, "-o answer --max-tokens 5")
    assert (again.out, again.max_tokens) == ("answer", 5)
    for _ in range(2):  # a bad line is refused every time, not cached as a result
        assert "could not read the arguments" in one_line_error(
            convo_shell, '%%turn -o "unbalanced\nhello', capsys
        )


def test_providers_share_the_sessions_client_and_unloading_closes_it(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    from nbconvo._session import SESSION

    assert turn(convo_shell, "one", "c1").success
    assert run(convo_shell, "%convo new side").success
    assert turn(convo_shell, "two", "c2").success
    client = SESSION._client
    assert client is not None and not client.is_closed
    providers = [p for c in SESSION.conversations.values() for p in c._providers.values()]
    assert len(providers) == 2 and all(p.client is client for p in providers)  # type: ignore[attr-defined]
    nbconvo.unload_ipython_extension(convo_shell)
    convo_shell.extension_manager.loaded.discard("nbconvo")
    assert client.is_closed and all(not c._providers for c in SESSION.conversations.values())
    assert run(convo_shell, "%load_ext nbconvo").success
    assert turn(convo_shell, "three", "c3").success  # a new client, the same conversation
    assert SESSION._client is not None and SESSION._client is not client
    assert [t.prompt for t in nbconvo.current().path] == ["two", "three"]


def test_convo_help_writes_the_magic_as_it_is_typed() -> None:
    from nbconvo._magics import ConvoMagics

    text = ConvoMagics.convo.__doc__ or ""
    assert "%%convo" not in text
    assert "  %convo save [-c CONVO] path" in text and "  %convo COMMAND ..." in text


def test_a_rerun_of_a_convo_new_cell_starts_it_afresh_and_keeps_the_old_one(
    shell: InteractiveShell, fake_openai: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbconvo._session import SESSION

    assert shell.run_cell("%convo model openai:gpt-test").success
    for _run in range(2):  # Run All, twice
        assert shell.run_cell("%convo new research", cell_id="n1").success
        assert shell.run_cell("%%turn\nfirst question", cell_id="t1").success
    research = SESSION.conversations["research"]
    assert [t.prompt for t in research.path] == ["first question"]  # a fresh generation
    assert [(name, len(tree)) for name, tree in SESSION.archived] == [("research", 1)]
    # another cell still may not take the name; and the maker is known after a reload
    assert "exists already" in one_line_error(shell, "%convo new research", capsys)
    saved = tmp_path / "s.json"
    assert shell.run_cell(f"%convo save {saved}").success
    assert shell.run_cell(f"%convo load {saved}").success
    assert shell.run_cell("%convo new research", cell_id="n1").success
    assert len(SESSION.conversations["research"].tree) == 0
