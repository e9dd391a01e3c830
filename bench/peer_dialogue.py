"""One 20-turn dialogue through one tool, against the loopback server at argv[2].

Runs inside the tool's own environment (nbconvo's .venv, bench/.venv-jupyter-ai,
bench/.venv-llm) and prints one JSON line: the wall time of each turn. The tool is
loaded before the clock starts (load time is bench_load's business).

    python bench/peer_dialogue.py nbconvo|jupyter-ai|llm BASE_URL TURNS
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KEY = "sk-bench-fake-key-0000000000000000"


def prompt(i: int) -> str:
    return f"Question {i}: what would you check next about the churn signals, and why?"


def nbconvo_turns(base_url: str) -> Callable[[str], str]:
    from IPython.core.interactiveshell import InteractiveShell

    os.environ["OPENAI_BASE_URL"] = base_url
    os.environ["NBCONVO_AUTOSAVE"] = "off"
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbconvo")
    ip.run_line_magic("convo", "model openai:bench-300")

    def turn(text: str) -> str:
        ip.run_cell_magic("turn", "", text)
        import nbconvo

        head = nbconvo.current().head
        return head.answer if head else ""

    return turn


def jupyter_ai_turns(base_url: str) -> Callable[[str], str]:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_ai_magics")
    params = json.dumps({"openai_api_base": base_url}, separators=(",", ":"))
    line = f"openai-chat-custom:bench-300 -f text -m {params}"

    def turn(text: str) -> str:
        result = ip.run_cell_magic("ai", line, text)
        return str(result or "")

    return turn


def llm_turns(base_url: str) -> Callable[[str], str]:
    folder = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    (folder / "extra-openai-models.yaml").write_text(
        f'- model_id: bench\n  model_name: bench-300\n  api_base: "{base_url}"\n'
    )
    os.environ["LLM_USER_PATH"] = str(folder)
    import llm

    model = llm.get_model("bench")
    model.key = KEY
    conversation = model.conversation()

    def turn(text: str) -> str:
        return str(conversation.prompt(text).text())

    return turn


def main() -> int:
    tool, base_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.environ["OPENAI_API_KEY"] = KEY
    make = {"nbconvo": nbconvo_turns, "jupyter-ai": jupyter_ai_turns, "llm": llm_turns}[tool]
    turn = make(base_url)
    times = []
    lengths = []
    for i in range(count):
        started = time.perf_counter()
        answer = turn(prompt(i))
        times.append(time.perf_counter() - started)
        lengths.append(len(answer))
    print(json.dumps({"times": times, "lengths": lengths}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
