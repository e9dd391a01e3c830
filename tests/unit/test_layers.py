"""The layers of nbconvo point one way (issue #13). Every import of an nbconvo module by
another, at module level, inside a function (lazy imports) or under
``if TYPE_CHECKING:`` (a type named in an annotation is a dependency too), goes to the
same layer or a lower one, and no imports form a circle. A lower layer that needs to
describe a higher one's object does it with a ``Protocol`` of its own.

    core         values and rules, no I/O: errors, settings and credentials, parts,
                 messages and events, the tree, the token meter and counting, the model
                 table, HTML rendering
    providers    one wire format each, and the local model's files
    persistence  the portable document, the SQLite store, replay cassettes
    engine       a conversation: its requests, running a turn, summaries, transcripts
    session      a kernel's conversations and their store
    ui           magics, display, widget, notebook values, command line, the package's
                 public face
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "nbconvo"

LAYERS: list[tuple[str, set[str]]] = [
    ("core", {"_errors", "_credentials", "_settings", "_parts", "_types", "_events", "_models",
              "_tokens", "_images", "_tree", "_meter", "_html", "_tools", "_cost"}),
    ("providers", {"providers", "providers._base", "providers._content", "providers._http",
                   "providers.openai", "providers.azure", "providers.anthropic",
                   "providers.gemini", "providers.copilot", "providers.llama", "_localmodel",
                   "providers.openai_responses"}),
    ("persistence", {"_document", "_store", "_cassette"}),
    ("engine", {"_stream", "_compact", "_conversation", "_transcript", "_toolloop"}),
    ("session", {"_session"}),
    ("ui", {"", "_render", "_display", "_widget", "_widget_protocol", "_magics", "_commands",
            "_interpolate", "_values", "_notebook", "_cli", "_kernelclient"}),
]
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}
NAME = {rank: name for rank, (name, _) in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(nbconvo module, line) for each import in ``path``: lazy ones and those for type
    checking included."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "nbconvo" or alias.name.startswith("nbconvo."):
                    found.append((alias.name.removeprefix("nbconvo").lstrip("."), node.lineno))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module == "nbconvo" or (node.module or "").startswith("nbconvo."))
        ):
            base = (node.module or "").removeprefix("nbconvo").lstrip(".")
            for alias in node.names:  # `from nbconvo import _errors` names a module
                sub = f"{base}.{alias.name}".lstrip(".")
                found.append((sub if sub in known else base, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {
        name: {target for target, _ in imports_of(path, set(found)) if target != name}
        for name, path in found.items()
    }


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(set(modules()) - set(RANK))
    assert not unplaced, f"place these modules in a layer of LAYERS: {unplaced}"
    gone = sorted(set(RANK) - set(modules()))
    assert not gone, f"LAYERS names modules that do not exist: {gone}"


def test_imports_point_down_or_sideways() -> None:
    found = modules()
    upward = [
        f"{name or 'nbconvo'} ({NAME[RANK[name]]}) imports {target or 'nbconvo'} "
        f"({NAME[RANK[target]]}) at line {line}"
        for name, path in found.items()
        for target, line in imports_of(path, set(found))
        if target in RANK and name in RANK and RANK[target] > RANK[name]
    ]
    assert not upward, "\n".join(upward)


def test_no_circular_imports() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                walk(target, [*stack, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            walk(start, [start])
    assert not cycles, "\n".join(" → ".join(m or "nbconvo" for m in c) for c in cycles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from nbconvo._tree import Turn\n", ["_tree"]),
        ("def f():\n    from nbconvo._magics import ConvoMagics\n", ["_magics"]),
        ("from nbconvo import _errors\n", ["_errors"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nbconvo._session import Session\n", ["_session"]),
        ("import nbconvo._compact as _compact\n", ["_compact"]),
        ("import nbconvo.providers.openai\n", ["providers.openai"]),
    ],
)
def test_the_checker_sees_every_kind_of_import(tmp_path: Path, source: str, expected: list[str]) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert [m for m, _ in imports_of(path, set(modules()))] == expected
