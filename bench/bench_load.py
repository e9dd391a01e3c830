"""Load time: ``%load_ext nbconvo`` in a fresh IPython vs ``%load_ext jupyter_ai_magics``
vs ``import llm`` vs bare IPython, each in a fresh process, in rotating order.

Each process creates an ``InteractiveShell``, then loads the extension; it reports the
time of the load itself (what the extension adds) and the caller times the whole process
(interpreter start to exit). The peers run in their own environments (``make bench``
creates them); a peer whose environment is missing is reported as not measured.

Run: ``.venv/bin/python bench/bench_load.py [--quick]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BENCH, ROOT, stats, write

PROBE = """
import json, sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t1 = time.perf_counter()
what = sys.argv[1]
if what.startswith("import:"):
    __import__(what[7:])
elif what != "bare":
    ip.run_line_magic("load_ext", what)
t2 = time.perf_counter()
print(json.dumps({"shell": t1 - t0, "load": t2 - t1}))
"""

SIDES = {
    "bare IPython": (ROOT / ".venv/bin/python", "bare"),
    "nbconvo": (ROOT / ".venv/bin/python", "nbconvo"),
    "jupyter-ai-magics": (BENCH / ".venv-jupyter-ai/bin/python", "jupyter_ai_magics"),
    "llm": (BENCH / ".venv-llm/bin/python", "import:llm"),
}


def once(python: Path, what: str) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), "-c", PROBE, what],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(BENCH),
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "NBCONVO_AUTOSAVE": "off"},
    )
    wall = time.perf_counter() - started
    line = done.stdout.strip().splitlines()[-1]
    data: dict[str, float] = json.loads(line)
    data["process"] = wall
    return data


def main() -> int:
    count = 3 if "--quick" in sys.argv else 15
    sides = {name: side for name, side in SIDES.items() if side[0].exists()}
    missing = sorted(set(SIDES) - set(sides))
    for python, what in sides.values():  # warm the disk cache
        once(python, what)
    samples: dict[str, dict[str, list[float]]] = {n: {"load": [], "process": []} for n in sides}
    names = list(sides)
    for r in range(count):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            data = once(*sides[name])
            samples[name]["load"].append(data["load"])
            samples[name]["process"].append(data["process"])
    out: dict[str, Any] = {"missing": missing}
    for name, values in samples.items():
        out[name] = {k: stats(v) for k, v in values.items()}
        print(
            f"{name:>18}: load {out[name]['load']['median'] * 1e3:8.1f} ms · "
            f"process {out[name]['process']['median'] * 1e3:8.1f} ms",
            flush=True,
        )
    if "jupyter-ai-magics" in out:
        out["ratio_nbconvo_to_jupyter_ai"] = (
            out["nbconvo"]["load"]["median"] / out["jupyter-ai-magics"]["load"]["median"]
        )
        print(f"nbconvo / jupyter-ai-magics load: {out['ratio_nbconvo_to_jupyter_ai']:.3f}")
    for name in missing:
        print(f"{name}: environment missing, not measured (`make bench` creates it)")
    write("load", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
