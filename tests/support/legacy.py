"""The committed autosave of nbconvo 0.1 (a snapshot and its journal) and what it holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbconvo
from nbconvo._document import journal_path
from nbconvo._session import SESSION

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LEGACY = FIXTURES / "legacy" / "tour.nbconvo.json"


def legacy_copy(folder: Path) -> Path:
    """The committed fixture (written by nbconvo 0.1's autosave) copied into ``folder``."""
    target = folder / LEGACY.name
    shutil.copy(LEGACY, target)
    shutil.copy(journal_path(LEGACY), journal_path(target))
    return target


def check_legacy_tour() -> None:
    """What the fixture holds: 5 turns in `default` (main 1-2-3, a fork `pricing` at 1
    with its own turn), goal and system set, and a `side` conversation of one turn."""
    convo = nbconvo.current()
    assert convo.name == "default" and SESSION.current_name == "default"
    assert convo.branch == "pricing" and convo.branches == {"main": 3, "pricing": 4}
    assert [t.prompt for t in convo.path] == [
        "What are the main strategies for improving customer retention?",
        "Instead: change the pricing tiers?",
    ]
    assert len(convo.turns) == 4 and convo.system == "You are a concise analyst."
    assert convo.goal == "A churn playbook in 4 exchanges" and convo.model == "openai:gpt-4o-mini"
    side = SESSION.conversations["side"]
    assert [t.answer for t in side.turns] == ["A side answer"]
