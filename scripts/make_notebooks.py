"""Writes the documentation notebooks with stable cell ids (run once; outputs are
produced by `nbconvo run`). Edit the cells here, then rerun to regenerate the files."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"


def cells(spec: list[tuple[str, str]], prefix: str) -> list[nbformat.NotebookNode]:
    out = []
    for n, (kind, source) in enumerate(spec, 1):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"{prefix}-{n:02d}"
        out.append(cell)
    return out


QUICKSTART = [
    ("md", "# nbconvo quickstart\n\nEach `%%turn` cell is one turn of a conversation kept in "
           "the kernel as a tree. With no API key set, nbconvo uses the local model fetched by "
           "`make demo` (Qwen2.5-Coder, running in-process with llama-cpp-python)."),
    ("code", "%load_ext nbconvo"),
    ("code", "%convo system You are a concise assistant. Answer in at most two sentences."),
    ("md", "## Turns\n\nA turn streams its answer as Markdown, then a footer: turn number, branch, "
           "model, tokens."),
    ("code", "%%turn\nMy name is Ada and I run a small bakery. Suggest one way to keep customers "
             "coming back."),
    ("code", "%%turn\nGive one concrete example of that for my bakery."),
    ("code", "%%turn\nWhat is my name? Answer with one word."),
    ("md", "## Fork\n\n`%convo fork 1` goes back to turn 1 and starts a branch there: the next "
           "turn sees turn 1 but not turns 2 and 3."),
    ("code", "%convo fork 1 --name pricing"),
    ("code", "%%turn\nInstead, suggest one pricing change that would help."),
    ("code", "%convo branches"),
    ("md", "## Interpolation and regeneration\n\n`{name}` takes a value from the notebook. "
           "Rerunning a cell makes a new version of its turn (here two cells share `--id "
           "tagline`, as a front end without cell ids would): the first answer stays in the "
           "tree as version 3.1, the new one is 3.2."),
    ("code", 'tone = "playful"'),
    ("code", "%%turn --id tagline\nWrite a {tone} one-line tagline for the bakery."),
    ("code", 'tone = "formal"'),
    ("code", "%%turn --id tagline\nWrite a {tone} one-line tagline for the bakery."),
    ("code", "%convo history"),
    ("md", "`%convo switch main` returns to the first branch; `%convo show 3.1` shows the "
           "first tagline; `nbconvo.current()` is the conversation as a Python object."),
    ("code", "import nbconvo\nconvo = nbconvo.current()\n"
             "print(len(convo.turns), 'turns;', 'branches:', sorted(convo.branches))"),
]


FORKING = [
    ("md", "# Forking, switching, comparing\n\nA conversation is a tree. `%convo fork N` starts "
           "a branch at turn N of the active path; `%convo switch` moves between branches; "
           "`%convo compare` puts two branches side by side. Rerunning a cell makes a new "
           "*version* of its turn (3.1, 3.2), and nothing is ever deleted."),
    ("code", "%load_ext nbconvo"),
    ("code", "%convo system You are a product strategist. Answer in two sentences at most."),
    ("code", "%%turn\nWe sell a note-taking app. Name the two biggest reasons customers cancel."),
    ("code", "%%turn\nFocus on the first reason. One concrete fix?"),
    ("md", "## A second direction\n\nFork at turn 1: the new branch shares turn 1 and "
           "forgets turn 2."),
    ("code", "%convo fork 1 --name pricing"),
    ("code", "%%turn\nInstead, could a cheaper plan reduce cancellations? One sentence."),
    ("code", "%convo branches"),
    ("md", "## Side by side\n\nThe answers after the common turn, one column per branch "
           "(Markdown rendered, raw HTML neutralized)."),
    ("code", "%convo compare main pricing"),
    ("md", "## Versions\n\nTwo cells share `--id idea` (as a front end without cell ids "
           "would): the second is a rerun, version 3.2 beside 3.1."),
    ("code", "%convo switch main"),
    ("code", "%%turn --id idea\nSuggest a name for that fix."),
    ("code", "%%turn --id idea\nSuggest a shorter name for that fix."),
    ("code", "%convo history"),
    ("code", "%convo show 3.1"),
    ("md", "From Python, the same tree: `nbconvo.current()`."),
    ("code", "import nbconvo\nconvo = nbconvo.current()\n"
             "[(convo.tree.label(t.id), t.prompt[:30]) for t in convo.turns]"),
]

LONG = [
    ("md", "# Long conversations: meter, summarize, compact, goal, budget\n\nThree pitfalls of "
           "long dialogues: the context window runs out, the talk drifts from its goal, and "
           "it never finishes. Each has a tool."),
    ("code", "%load_ext nbconvo"),
    ("md", "Pin the goal (sent with every request) and a budget of exchanges (shown in each "
           "footer; a turn past it carries a notice)."),
    ("code", "%convo goal A three-step plan to learn Python for data analysis\n"),
    ("code", "%convo budget 3"),
    ("code", "%convo window 1500"),
    ("code", "%%turn\nMy name is Ada. What should I learn first? Two sentences."),
    ("code", "%%turn\nWhat next, after that? Two sentences."),
    ("md", "The meter: tokens the next request uses, against the window (≈ marks estimates; "
           "counts the provider reported are exact)."),
    ("code", "%convo meter"),
    ("code", "%%turn\nAnd the last step? Two sentences."),
    ("code", "%%turn\nAny final tip? One sentence."),
    ("md", "`%convo summarize` asks for the key decisions as bullets and changes nothing. "
           "`%convo compact --keep 1` starts a branch whose first turn is that summary, "
           "followed by the last turn: the request shrinks, the originals stay on `main`."),
    ("code", "%convo summarize"),
    ("code", "%convo compact --keep 1"),
    ("code", "%convo meter"),
    ("code", "%%turn\nWhat is my name? One word."),
    ("code", "%convo branches"),
]

PROVIDERS = [
    ("md", "# Providers\n\nA model is `PROVIDER:MODEL`. Keys come from the environment (or "
           "`%convo key PROVIDER`, kept in memory only) and never appear in outputs.\n\n"
           "| prefix | service | set |\n| --- | --- | --- |\n"
           "| `openai:` | OpenAI | `OPENAI_API_KEY` (`OPENAI_BASE_URL` for gateways) |\n"
           "| `anthropic:` | Anthropic | `ANTHROPIC_API_KEY` |\n"
           "| `gemini:` | Google Gemini | `GEMINI_API_KEY` |\n"
           "| `azure:` | Azure OpenAI | `AZURE_OPENAI_API_KEY`, `AZURE_OPENAI_ENDPOINT` |\n"
           "| `copilot:` | Microsoft 365 Copilot | `NBCONVO_M365_TOKEN` |\n"
           "| `ollama:`, `vllm:`, `llamacpp:`, `lmstudio:` | local servers | `--base-url` |\n"
           "| `llama:` | a GGUF file, in-process | a path or `qwen2.5-coder-1.5b` |\n\n"
           "For example `%convo model anthropic:claude-sonnet-5-5`, or a local Ollama: "
           "`%convo model ollama:llama3.2` (default address `http://localhost:11434/v1`; "
           "another with `--base-url`)."),
    ("code", "%load_ext nbconvo"),
    ("md", "This notebook runs on the local model, in-process: no server, no key."),
    ("code", "%convo model llama:qwen2.5-coder-1.5b"),
    ("code", "%convo model"),
    ("md", "`-m` picks a model for one turn only; `%convo inspect` shows the exact next "
           "request, as the provider will receive it (never with a key)."),
    ("code", "%%turn -m llama:qwen2.5-coder-1.5b --max-tokens 40\n"
             "In one sentence: what is a GGUF file?"),
    ("code", "%convo inspect And which program runs it"),
    ("md", "Without a model, nbconvo picks `NBCONVO_MODEL`, then a provider whose key is "
           "set, then the local model. Mistakes are one-line errors that say the fix, and "
           "change nothing: a missing key names the variable to set, an unknown provider "
           "lists the known ones."),
    ("code", "import nbconvo\n"
             "try:\n    nbconvo.current().ask('hello', model='chatgpt:latest')\n"
             "except nbconvo.NbconvoError as error:\n    print(type(error).__name__, '-', error)"),
]

NOTEBOOKS = {
    "quickstart": QUICKSTART,
    "forking": FORKING,
    "long-conversations": LONG,
    "providers": PROVIDERS,
}


def main(only: list[str]) -> None:
    HERE.mkdir(exist_ok=True)
    for name, spec in NOTEBOOKS.items():
        if only and name not in only:
            continue
        nb = new_notebook(cells=cells(spec, name))
        nb.metadata["kernelspec"] = {
            "name": "python3", "display_name": "Python 3", "language": "python"
        }
        nbformat.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
