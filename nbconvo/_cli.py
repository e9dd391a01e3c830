"""``nbconvo run NOTEBOOK``: execute a notebook headlessly and regenerate its dialogue.

Each execute request carries the cell's id in its metadata, as JupyterLab sends it, so
turns map to cells exactly as they do in the browser (the rerun contract holds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

TRANSCRIPT_CODE = """\
import json as _json, nbconvo as _nbconvo, nbconvo._transcript
print("NBCONVO-TRANSCRIPT" + _json.dumps({
    name: _nbconvo._transcript.transcript_markdown(c, all_branches=True)
    for name, c in _nbconvo._session.SESSION.conversations.items() if c.turns
}))
"""


def run_notebook(
    path: Path,
    *,
    output: Path | None = None,
    transcript: Path | None = None,
    model: str | None = None,
    cassette: Path | None = None,
    mode: str = "replay",
    env: dict[str, str] | None = None,
    timeout: int = 600,
    progress: bool = True,
) -> tuple[Path, Path, str]:
    """Execute ``path``; write the executed notebook and the transcript. Returns
    (notebook path, transcript path, transcript text)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm import tqdm

    from nbconvo._errors import NbconvoError
    from nbconvo._kernelclient import CellIdKernelManager

    nb = nbformat.read(path, as_version=4)
    output = output or path.with_name(path.stem + ".out.ipynb")
    transcript = transcript or output.with_suffix(".md")
    for target in (output, transcript):
        target.parent.mkdir(parents=True, exist_ok=True)
    kernel_env = {**os.environ, **(env or {})}
    if model:
        kernel_env["NBCONVO_MODEL"] = model
    if cassette is not None:
        kernel_env["NBCONVO_CASSETTE"] = str(cassette.resolve())
        kernel_env["NBCONVO_CASSETTE_MODE"] = mode
    kernel_env["NBCONVO_NOTEBOOK"] = path.name
    kernel_env.setdefault("NBCONVO_AUTOSAVE", str(output.with_suffix(".nbconvo.db").resolve()))
    # Each run is a new session in that store; the notebook it writes should not show a
    # "restore the earlier session" notice from the run before.
    kernel_env.setdefault("NBCONVO_LOAD_NOTICE", "off")

    class CellIdNotebookClient(NotebookClient):  # type: ignore[misc]
        def execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
            if self.kc is not None:
                self.kc.next_cell_id = cell.get("id")  # type: ignore[attr-defined]
            return super().execute_cell(cell, cell_index, *args, **kwargs)

    client = CellIdNotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        kernel_manager_class=CellIdKernelManager,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    bar = tqdm(
        total=len(code_cells), desc=path.name, unit="cell", disable=not progress, file=sys.stderr
    )

    def transcript_so_far() -> str:
        """Every conversation of the kernel as Markdown (a cell run after the others)."""
        probe = nbformat.v4.new_code_cell(TRANSCRIPT_CODE)
        nb.cells.append(probe)
        try:
            client.execute_cell(probe, len(nb.cells) - 1)
        finally:
            nb.cells.pop()
        texts: dict[str, str] = {}
        for out in probe.outputs:
            text = out.get("text", "")
            if text.startswith("NBCONVO-TRANSCRIPT"):
                texts = json.loads(text[len("NBCONVO-TRANSCRIPT") :])
        return "\n\n".join(texts.values()) or "*(no turns)*\n"

    with client.setup_kernel(env=kernel_env):
        try:
            for index in code_cells:
                bar.set_postfix_str(_first_line(nb.cells[index].source))
                client.execute_cell(nb.cells[index], index)
                bar.update(1)
        except CellExecutionError as error:
            bar.close()
            nbformat.write(nb, output)
            written = f"partial notebook written to {output}"
            try:  # the turns before the failing cell are the user's: keep them too
                transcript.write_text(transcript_so_far(), encoding="utf-8")
                written += f", the transcript so far to {transcript}"
            except Exception:  # a dead kernel: the notebook is what there is
                pass
            raise NbconvoError(
                f"cell {index + 1} of {path.name} failed: {_error_line(error)} ({written})"
            ) from None
        bar.close()
        body = transcript_so_far()
    nbformat.write(nb, output)
    transcript.write_text(body, encoding="utf-8")
    return output, transcript, body


def _first_line(source: str) -> str:
    line = next((s for s in source.splitlines() if s.strip()), "")
    return line[:40]


def _error_line(error: Exception, limit: int = 600) -> str:
    """The cell's error in one line: whole, unless it is very long (then cut at a word,
    and marked)."""
    ename = getattr(error, "ename", "") or type(error).__name__
    evalue = " ".join(str(getattr(error, "evalue", "") or "").split())
    line = f"{ename}: {evalue}"
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + " …"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbconvo", description=__doc__)
    subs = parser.add_subparsers(dest="command", required=True)
    run = subs.add_parser("run", help="execute a notebook, regenerating its dialogue")
    run.add_argument("notebook", type=Path)
    run.add_argument("--model", help="PROVIDER:MODEL used where the notebook sets none")
    run.add_argument("--output", type=Path, help="executed notebook (default NAME.out.ipynb)")
    run.add_argument("--transcript", type=Path, help="Markdown transcript (default NAME.out.md)")
    run.add_argument("--cassette", type=Path, help="replay cassette (JSON Lines)")
    run.add_argument(
        "--mode",
        choices=("record", "replay", "auto"),
        default="replay",
        help="cassette mode (default replay: no model or key needed)",
    )
    run.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    run.add_argument("--quiet", action="store_true", help="no progress bar or transcript print")
    run.add_argument(
        "--allow-tools",
        action="store_true",
        help="run the notebook functions the model calls (without it, no tool runs: a "
        "replayed call gets its recorded result, a new one is refused)",
    )
    args = parser.parse_args(argv)
    from nbconvo._errors import NbconvoError

    if not args.notebook.is_file():
        print(f"nbconvo: no notebook at {args.notebook}", file=sys.stderr)
        return 2
    try:
        out, transcript, text = run_notebook(
            args.notebook,
            output=args.output,
            transcript=args.transcript,
            model=args.model,
            cassette=args.cassette,
            mode=args.mode,
            timeout=args.timeout,
            progress=not args.quiet,
            env={"NBCONVO_APPROVE_TOOLS": "1" if args.allow_tools else "0"},
        )
    except NbconvoError as error:
        print(f"nbconvo: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(text)
    print(f"nbconvo: wrote {out} and {transcript}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
