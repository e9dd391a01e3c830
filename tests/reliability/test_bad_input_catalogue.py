"""The bad-input catalogue: each case is one cell a user might run, with the one-line
error it must give. Every case leaves the conversation, the files nbconvo wrote (the
autosave, a cassette, a saved file) and the fake server untouched.

tests/unit/test_magics.py's BAD_INPUT covers the argument errors of the everyday commands;
this table adds files (corrupt autosave and cassette, unwritable folders, non-UTF-8),
keys, windows, huge and odd cells, interpolation and ``%config``, and repeats a few
everyday ones so the catalogue reads as a whole."""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._magics import SETTING_TRAITS
from tests.support import reliability_counts as counts
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.helpers import FAKE_KEY


@dataclass
class Ctx:
    shell: InteractiveShell
    folder: Path  # {tmp} in a case's source
    monkeypatch: pytest.MonkeyPatch


Setup = Callable[[Ctx], None]


def write(name: str, data: bytes | str) -> Setup:
    def setup(ctx: Ctx) -> None:
        path = ctx.folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def unwritable(ctx: Ctx) -> None:
    # a file where the folder should be: no write can succeed, even as root (chmod would
    # not stop root, which runs these tests in CI containers)
    (ctx.folder / "locked").write_text("a file, not a folder")


def window(tokens: int) -> Setup:
    def setup(ctx: Ctx) -> None:
        nbconvo.current().window = tokens

    return setup


def unset(variable: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.monkeypatch.delenv(variable, raising=False)

    return setup


def variable(name: str, value: object) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.shell.user_ns[name] = value

    return setup


def file(name: str, data: bytes = b"", size: int | None = None) -> Setup:
    """A file in the test's folder ({tmp}): ``data``, or ``size`` bytes of a sparse file."""

    def setup(ctx: Ctx) -> None:
        path = ctx.folder / name
        path.write_bytes(data)
        if size is not None:
            with path.open("r+b") as handle:
                handle.truncate(size)

    return setup


def bmp_named_png(ctx: Ctx) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(ctx.folder / "old.png", format="BMP")


def no_error_yet(ctx: Ctx) -> None:
    ctx.monkeypatch.delattr(sys, "last_value", raising=False)


def figure_for_copilot(ctx: Ctx) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([1, 2, 3])
    ctx.shell.user_ns["fig"] = figure
    ctx.monkeypatch.setenv("NBCONVO_M365_TOKEN", "copilot-test-token")
    ctx.monkeypatch.setenv("NBCONVO_M365_BASE_URL", "http://127.0.0.1:9/beta")


VALID = {"format": "nbconvo", "version": 1}
HUGE = "word " * 400_000  # 2 MB

# (id, cell source, expected text of the one-line error, setup before the snapshot)
CATALOGUE: list[tuple[str, str, str, Setup | None]] = [
    # malformed magic arguments and unknown subcommands
    ("unknown-subcommand", "%convo frobnicate", "invalid choice: 'frobnicate'", None),
    ("unknown-subcommand-typo", "%convo brnaches", "invalid choice: 'brnaches'", None),
    ("unbalanced-quote", "%convo fork 'unbalanced", "could not read the arguments", None),
    ("fork-not-a-number", "%convo fork x", "argument n: invalid int value: 'x'", None),
    ("fork-extra-argument", "%convo fork 1 2", "unrecognized arguments: 2", None),
    ("budget-zero", "%convo budget 0", "budget must be at least 1 exchange, not 0", None),
    ("budget-words", "%convo budget lots", "budget needs a whole number", None),
    ("window-zero", "%convo window 0", "window must be a positive number of tokens", None),
    ("window-words", "%convo window big", "window needs a whole number of tokens", None),
    ("export-unknown-format", "%convo export --to pdf", "invalid choice: 'pdf'", None),
    ("replay-unknown-mode", "%convo replay x.jsonl --mode rewind", "invalid choice: 'rewind'", None),
    ("compact-keep-words", "%convo compact --keep few", "invalid int value: 'few'", None),
    ("summarize-into-bad-name", "%convo summarize --into 1x", "--into needs a Python variable", None),
    ("turn-unknown-option", "%%turn --bogus\nhello", "unrecognized arguments: --bogus", None),
    ("turn-temperature-words", "%%turn -t hot\nhello", "invalid float value: 'hot'", None),
    ("turn-out-bad-name", "%%turn -o 1x\nhello", "-o/--out needs a Python variable name", None),
    ("turn-max-tokens-zero", "%%turn --max-tokens 0\nhello", "--max-tokens must be a positive", None),
    ("turn-fork-words", "%%turn --fork two\nhello", "invalid int value: 'two'", None),
    # notebook values, attachments and images (issue #16)
    ("attach-60-mb-image", "%%turn --attach {tmp}/huge.png\nlook", "the file is 60.0 MB, more than 50 MB", file("huge.png", size=60 * 1024 * 1024)),
    ("attach-missing-file", "%%turn --attach {tmp}/nowhere.png\nlook", "cannot read it (No such file or directory)", None),
    ("attach-folder", "%%turn --attach {tmp}\nlook", "extensionless files cannot be attached", None),
    ("attach-not-a-pdf", "%%turn --attach {tmp}/paper.pdf\nread", "paper.pdf is not a PDF", file("paper.pdf", b"<html>")),
    ("attach-pdf-to-a-server", "%%turn -m ollama:llama3.2 --attach {tmp}/paper.pdf\nread", "ollama:llama3.2 does not take a PDF", file("paper.pdf", b"%PDF-1.7\n/Type /Page\n")),
    ("attach-word-file", "%%turn --attach {tmp}/memo.docx\nread", ".docx files cannot be attached", file("memo.docx", b"PK")),
    ("attach-not-an-image", "%%turn --attach {tmp}/fake.png\nlook", "could not read the image", file("fake.png", b"not a picture")),
    ("attach-bmp-image", "%%turn --attach {tmp}/old.png\nlook", "images in BMP are not taken", bmp_named_png),
    ("figure-to-copilot", "%%turn -m copilot:chat\nexplain {fig}", "copilot:chat does not take an image", figure_for_copilot),
    ("error-without-error", "%%turn --error\nwhy", "there is no error in this kernel yet", no_error_yet),
    # unknown provider, model or conversation; missing key
    ("model-unknown-provider", "%convo model nope:thing", "unknown provider 'nope'", None),
    ("model-no-prefix", "%convo model gpt-5", "bad model 'gpt-5': write PROVIDER:MODEL", None),
    ("turn-unknown-provider", "%%turn -m nope:x\nhello", "unknown provider 'nope'", None),
    ("turn-model-no-prefix", "%%turn -m gpt-5\nhello", "bad model 'gpt-5'", None),
    ("use-unknown-convo", "%convo use ghost", "no conversation named 'ghost'", None),
    ("turn-unknown-convo", "%%turn -c ghost\nhello", "no conversation named 'ghost'", None),
    ("system-unknown-convo", "%convo system -c ghost be brief", "no conversation named 'ghost'", None),
    ("new-bad-name", "%convo new bad/name", "bad conversation name 'bad/name'", None),
    ("new-existing-name", "%convo new default", "exists already", None),
    (
        "missing-key-anthropic",
        "%%turn -m anthropic:claude-sonnet-5-5\nhello",
        "set the environment variable ANTHROPIC_API_KEY",
        unset("ANTHROPIC_API_KEY"),
    ),
    (
        "missing-key-openai",
        "%%turn\nhello",
        "set the environment variable OPENAI_API_KEY",
        unset("OPENAI_API_KEY"),
    ),
    ("key-unknown-provider", "%convo key nope", "nope", None),
    # fork and switch targets
    ("fork-out-of-range", "%convo fork 9", "turn 9 is out of range", None),
    ("fork-negative", "%convo fork -1", "out of range", None),
    ("fork-name-taken", "%convo fork 1 --name main", "branch 'main' exists already", None),
    ("turn-fork-out-of-range", "%%turn --fork 5\nhello", "turn 5 is out of range", None),
    ("switch-unknown-branch", "%convo switch nowhere", "no branch named 'nowhere'", None),
    ("switch-unknown-id", "%convo switch #99", "there is no turn #99", None),
    ("switch-unknown-version", "%convo switch 1.7", "1.7", None),
    ("show-out-of-range", "%convo show 7", "turn 7 is out of range", None),
    ("show-unknown-id", "%convo show #42", "#42", None),
    ("compare-unknown-branch", "%convo compare main ghost", "no branch named 'ghost'", None),
    # empty, whitespace, huge and odd cells
    ("empty-cell", "%%turn\n", "the cell body is empty", None),
    ("whitespace-cell", "%%turn\n   \n\t\n", "the turn is empty", None),
    ("blank-after-interpolation", "%%turn\n{blank}", "the turn is empty", variable("blank", "  ")),
    ("prompt-over-window", "%%turn\n" + "word " * 400, "but the window of openai:gpt-test is 100", window(100)),
    ("huge-cell-over-window", "%%turn\n" + HUGE, "nothing was sent", window(10_000)),
    # files: missing, corrupt, non-UTF-8, foreign, future, unwritable
    ("load-missing-file", "%convo load {tmp}/missing.json", "no file at", None),
    ("load-corrupt-autosave", "%convo load {tmp}/corrupt.json", "corrupt.json", write("corrupt.json", '{"format": "nbconvo", "vers')),
    ("load-non-utf8", "%convo load {tmp}/latin.json", "latin.json", write("latin.json", b"\xff\xfe\x00garbage\xc3")),
    ("load-foreign-json", "%convo load {tmp}/other.json", "is not an nbconvo file", write("other.json", '{"cells": []}')),
    ("load-future-version", "%convo load {tmp}/future.json", "future.json", write("future.json", json.dumps({**VALID, "version": 99}))),
    ("load-broken-tree", "%convo load {tmp}/tree.json", "tree.json", write("tree.json", json.dumps({**VALID, "conversations": {"default": {"tree": {"turns": [{"id": 1}]}}}}))),
    ("load-a-folder", "%convo load {tmp}", "cannot read", None),
    ("replay-corrupt-cassette", "%convo replay {tmp}/bad.jsonl --mode replay", "bad.jsonl", write("bad.jsonl", "not json at all\n")),
    ("replay-non-utf8-cassette", "%convo replay {tmp}/bin.jsonl --mode replay", "bin.jsonl", write("bin.jsonl", b"\x80\x81\x82\n")),
    ("replay-foreign-cassette", "%convo replay {tmp}/foreign.jsonl --mode auto", "foreign.jsonl", write("foreign.jsonl", '{"hello": 1}\n')),
    ("save-unwritable-folder", "%convo save {tmp}/locked/s.json", "cannot write in", unwritable),
    ("export-unwritable-folder", "%convo export {tmp}/locked/t.md", "cannot write in", unwritable),
    # invalid %config values
    ("config-auto-compact-too-big", "%config ConvoMagics.auto_compact = 2.0", "auto_compact", None),
    ("config-auto-compact-words", "%config ConvoMagics.auto_compact = 'half'", "auto_compact", None),
    ("config-keep-negative", "%config ConvoMagics.auto_compact_keep = -1", "auto_compact_keep", None),
    ("config-retries-negative", "%config ConvoMagics.max_retries = -1", "max_retries", None),
    ("config-wait-words", "%config ConvoMagics.retry_max_wait = 'soon'", "retry_max_wait", None),
    ("config-window-zero", "%config ConvoMagics.llama_n_ctx = 0", "llama_n_ctx", None),
    ("config-stream-words", "%config ConvoMagics.stream = 'sometimes'", "stream", None),
]


def tracked_files(*folders: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def snapshot() -> Any:
    from nbconvo._session import SESSION

    magics = nbconvo._MAGICS
    traits = {name: getattr(magics, name) for name in SETTING_TRAITS} if magics else None
    settings = (traits, SESSION.settings)
    return settings, copy.deepcopy(
        {
            name: (c.tree, c.model, c.system, c.goal, c.budget, c.window, c.base_url)
            for name, c in SESSION.conversations.items()
        }
    ), SESSION.current_name


@pytest.mark.parametrize(
    ("source", "message", "setup"),
    [pytest.param(source, message, setup, id=name) for name, source, message, setup in CATALOGUE],
)
def test_bad_input_is_one_line_and_changes_nothing(
    shell: InteractiveShell,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    source: str,
    message: str,
    setup: Setup | None,
) -> None:
    home = Path(os.environ["NBCONVO_HOME"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-" + "ant-test")  # split: no key-shaped literal in the repo
    assert shell.run_cell("%convo model openai:gpt-test").success
    assert shell.run_cell("%%turn\none", cell_id="c1").success
    cassette = tmp_path / "rec.jsonl"
    assert shell.run_cell(f"%convo replay {cassette} --mode record").success
    assert shell.run_cell("%%turn\ntwo", cell_id="c2").success
    assert shell.run_cell("%convo replay off").success
    assert shell.run_cell(f"%convo save {tmp_path / 'saved.json'}").success
    if setup is not None:
        setup(Ctx(shell, tmp_path, monkeypatch))
    before, files = snapshot(), tracked_files(home, tmp_path)
    sent = len(fake_openai.requests)
    capsys.readouterr()
    caplog.clear()
    try:
        result = shell.run_cell(source.replace("{tmp}", str(tmp_path)), cell_id="bad")
    finally:
        # IPython keeps a rejected %config value in the shell's config; a later
        # `%load_ext nbconvo` would meet it again
        shell.config.pop("ConvoMagics", None)
    out = capsys.readouterr()
    # IPython's %config logs a rejected value once per configurable: the same line
    logged = sorted({r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR})
    text = "\n".join(t for t in (out.out.strip(), out.err.strip(), *logged) if t)
    counts.add("bad inputs")
    assert message in text, text
    assert len(text.splitlines()) == 1, text  # one line, no traceback
    assert "Traceback" not in text
    assert snapshot() == before
    assert tracked_files(home, tmp_path) == files
    assert len(fake_openai.requests) == sent
    if source.startswith(("%%turn", "%convo")):
        assert not result.success
    nbconvo.current().tree.check_invariants()
    # and the conversation still works
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    assert shell.run_cell("%%turn\nthree", cell_id="c3").success


def test_the_catalogue_is_large_enough() -> None:
    assert len(CATALOGUE) >= 40
    assert len({name for name, *_ in CATALOGUE}) == len(CATALOGUE)


def test_a_rejected_config_value_does_not_stop_a_reload(
    shell: InteractiveShell, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    """IPython keeps a value `%config` rejected in the shell's config; `%reload_ext
    nbconvo` used to meet it again and fail with a traceback, leaving no magics."""
    try:
        shell.run_line_magic("config", "ConvoMagics.auto_compact = 2.0")
        capsys.readouterr()
        assert shell.run_cell("%reload_ext nbconvo").success
        out = capsys.readouterr()
        text = (out.out + out.err).strip()
        assert len(text.splitlines()) == 1 and "ignored the ConvoMagics settings" in text, text
        assert nbconvo._MAGICS.auto_compact == 0.0
        assert shell.run_cell("%convo model openai:gpt-test").success
        assert shell.run_cell("%%turn\nstill here", cell_id="c1").success
    finally:
        shell.config.pop("ConvoMagics", None)
