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
           "`make demo` (Qwen2.5-Coder 0.5B, running in-process with llama-cpp-python)."),
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


def main() -> None:
    HERE.mkdir(exist_ok=True)
    nb = new_notebook(cells=cells(QUICKSTART, "quickstart"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, HERE / "quickstart.ipynb")


if __name__ == "__main__":
    main()
