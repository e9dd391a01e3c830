"""Settings in one place (issue #13): every NBCONVO_* variable is read by ``_settings``,
once, when the extension loads; ``%config ConvoMagics.NAME`` changes a setting after
that; a value that cannot be used is one line naming the variable, and the default."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbconvo._session import SESSION
from nbconvo._settings import Settings, read_environment, variable_for
from tests.support.fakes.openai_server import Canned, FakeOpenAI
from tests.support.helpers import turn

EVERYTHING = {
    "NBCONVO_MODEL": "openai:gpt-test",
    "NBCONVO_STREAM": "off",
    "NBCONVO_MAX_RETRIES": "5",
    "NBCONVO_RETRY_MAX_WAIT": "0.5",
    "NBCONVO_AUTOSAVE": "off",
    "NBCONVO_HOME": "/srv/notes",
    "NBCONVO_NOTEBOOK": "tour.ipynb",
    "NBCONVO_CASSETTE": "tour.jsonl",
    "NBCONVO_CASSETTE_MODE": "Replay",
    "NBCONVO_LOAD_NOTICE": "0",
    "NBCONVO_CACHE": "/srv/models",
    "NBCONVO_LOCAL_MODEL": "/srv/models/mine.gguf",
    "NBCONVO_LLAMA_N_CTX": "4096",
    "NBCONVO_LOCAL_CACHE_MB": "64",
    "NBCONVO_AUTO_COMPACT": "0.9",
    "NBCONVO_AUTO_COMPACT_KEEP": "3",
    "NBCONVO_VALUE_TOKENS": "800",
    "NBCONVO_TOOL_TIMEOUT": "2.5",
    "NBCONVO_TOOL_MAX_STEPS": "3",
    "NBCONVO_TOOL_RESULT_CHARS": "500",
    "NBCONVO_APPROVE_TOOLS": "1",
}


def test_an_empty_environment_gives_the_defaults() -> None:
    assert read_environment({}) == (Settings(), [])
    assert read_environment({"NBCONVO_STREAM": "", "NBCONVO_HOME": "  "}) == (Settings(), [])


def test_every_variable_is_read() -> None:
    settings, problems = read_environment(EVERYTHING)
    assert problems == []
    assert settings == Settings(
        model="openai:gpt-test",
        stream=False,
        max_retries=5,
        retry_max_wait=0.5,
        autosave="off",
        home="/srv/notes",
        notebook="tour.ipynb",
        cassette="tour.jsonl",
        cassette_mode="replay",
        load_notice=False,
        cache="/srv/models",
        local_model="/srv/models/mine.gguf",
        llama_n_ctx=4096,
        local_cache_mb=64,
        auto_compact=0.9,
        auto_compact_keep=3,
        value_tokens=800,
        tool_timeout=2.5,
        tool_max_steps=3,
        tool_result_chars=500,
        approve_tools=True,
    )
    assert settings.autosave_off
    assert {variable_for(name) for name in Settings.__dataclass_fields__} == set(EVERYTHING)


@pytest.mark.parametrize(
    ("variable", "value", "default"),
    [
        ("NBCONVO_MAX_RETRIES", "many", "2"),
        ("NBCONVO_MAX_RETRIES", "-1", "2"),
        ("NBCONVO_RETRY_MAX_WAIT", "soon", "60.0"),
        ("NBCONVO_RETRY_MAX_WAIT", "nan", "60.0"),
        ("NBCONVO_CASSETTE_MODE", "rewind", "auto"),
        ("NBCONVO_LLAMA_N_CTX", "0", "8192"),
        ("NBCONVO_LOCAL_CACHE_MB", "-5", "256"),
        ("NBCONVO_LOCAL_CACHE_MB", "lots", "256"),
        ("NBCONVO_AUTO_COMPACT", "1.5", "0.0"),
        ("NBCONVO_AUTO_COMPACT_KEEP", "two", "2"),
        ("NBCONVO_VALUE_TOKENS", "10", "1500"),
        ("NBCONVO_TOOL_TIMEOUT", "-1", "60.0"),
        ("NBCONVO_TOOL_MAX_STEPS", "0", "8"),
        ("NBCONVO_TOOL_RESULT_CHARS", "lots", "20000"),
    ],
)
def test_a_value_that_cannot_be_used_is_one_line_and_the_default(
    variable: str, value: str, default: str
) -> None:
    settings, problems = read_environment({variable: value, "NBCONVO_MODEL": "openai:x"})
    assert settings == Settings(model="openai:x")  # the others still count
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith(f"{variable}={value!r} is not ")
    assert f": using {default}; set it to " in problems[0] and problems[0].endswith("or unset it")


def test_changed_refuses_a_name_that_is_no_setting() -> None:
    with pytest.raises(TypeError, match="no such setting: colour"):
        Settings().changed(colour="blue")


# -- through a real shell --------------------------------------------------------------


def test_the_environment_is_read_once_when_the_extension_loads(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBCONVO_MAX_RETRIES", "0")
    monkeypatch.setenv("NBCONVO_STREAM", "0")
    assert SESSION.settings.max_retries == 2  # loaded before: not seen yet
    assert shell.run_cell("%reload_ext nbconvo").success
    assert (SESSION.settings.max_retries, SESSION.settings.stream) == (0, False)
    magics = shell.magics_manager.registry["ConvoMagics"]
    assert (magics.max_retries, magics.stream) == (0, False)  # what `%config` shows
    monkeypatch.setenv("NBCONVO_MAX_RETRIES", "7")  # after the load: not read
    assert shell.run_cell("%convo model openai:gpt-test").success
    assert SESSION.settings.max_retries == 0


def test_a_bad_variable_at_load_is_one_line_and_nbconvo_still_loads(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NBCONVO_RETRY_MAX_WAIT", "soon")
    capsys.readouterr()
    assert shell.run_cell("%reload_ext nbconvo").success
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "nbconvo: NBCONVO_RETRY_MAX_WAIT='soon' is not seconds ≥ 0: using 60.0; "
        "set it to seconds ≥ 0 or unset it"
    ]
    assert SESSION.settings.retry_max_wait == 60.0
    assert shell.run_cell("%convo model openai:gpt-test").success


def test_config_lists_the_settings_with_their_help(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert shell.run_cell("%config ConvoMagics").success
    listing = capsys.readouterr().out
    for name in ("stream", "max_retries", "retry_max_wait", "llama_n_ctx", "auto_compact"):
        assert f"ConvoMagics.{name}=" in listing
    assert "retries of a request that failed before any text" in listing


def test_config_given_before_the_load_wins_over_the_environment(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBCONVO_MAX_RETRIES", "0")
    monkeypatch.setenv("NBCONVO_AUTO_COMPACT", "0.8")
    assert shell.run_cell("%config ConvoMagics.max_retries = 4").success
    assert shell.run_cell("%reload_ext nbconvo").success
    assert (SESSION.settings.max_retries, SESSION.settings.auto_compact) == (4, 0.8)


def test_config_changes_the_retries_of_the_next_turn(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    assert convo_shell.run_cell("%config ConvoMagics.retry_max_wait = 0.01").success
    turn(convo_shell, "first", "c1")  # the provider exists, with the defaults
    assert convo_shell.run_cell("%config ConvoMagics.max_retries = 0").success
    fake_openai.script.append(Canned(status=503))
    before = len(fake_openai.requests)
    assert not convo_shell.run_cell("%%turn\nno retry").success
    assert len(fake_openai.requests) - before == 1
    assert convo_shell.run_cell("%config ConvoMagics.max_retries = 1").success
    fake_openai.script.append(Canned(status=503))
    before = len(fake_openai.requests)
    turn(convo_shell, "one retry", "c3")
    assert len(fake_openai.requests) - before == 2  # the 503, then the answer


def test_config_stream_off_shows_the_answer_once(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    outputs = convo_shell.display_pub
    pieces = ["The answer ", "comes ", "in ", "five ", "pieces."]
    fake_openai.script.append(Canned(pieces=pieces, delay=0.1))  # slower than 20 updates/s
    turn(convo_shell, "streamed", "c1")
    assert outputs.updates >= 2
    assert convo_shell.run_cell("%config ConvoMagics.stream = False").success
    outputs.reset()
    fake_openai.script.append(Canned(pieces=pieces, delay=0.1))
    turn(convo_shell, "whole", "c2")
    assert outputs.updates == 0
    assert outputs.plain()[0].startswith("The answer comes in five pieces.")


def test_config_sets_the_local_cache_budget(shell: InteractiveShell) -> None:
    assert SESSION.settings.local_cache_mb == 256
    assert shell.run_cell("%config ConvoMagics.local_cache_mb = 64").success
    assert SESSION.settings.local_cache_mb == 64
    shell.run_cell("%config ConvoMagics.local_cache_mb = -1")  # refused: a trait's minimum
    assert SESSION.settings.local_cache_mb == 64
    # A provider made under the old budget is let go: the next turn makes one with this.
    convo = SESSION.current()
    closed: list[bool] = []

    class Held:
        def close(self) -> None:
            closed.append(True)

    convo._providers[("llama:x", None)] = Held()  # type: ignore[assignment]
    assert shell.run_cell("%config ConvoMagics.local_cache_mb = 32").success
    assert closed == [True] and convo._providers == {}
