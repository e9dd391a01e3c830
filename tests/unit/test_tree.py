"""The conversation tree: DESIGN §2 rules and a stateful property test."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from nbconvo import ConversationError, UsageError
from nbconvo._tree import ConversationTree, Turn


def add(tree: ConversationTree, prompt: str, cell: str | None = None) -> Turn:
    return tree.append(
        Turn(id=tree.new_turn_id(), parent=None, prompt=prompt, answer=prompt.upper(), cell_id=cell)
    )


def prompts(tree: ConversationTree) -> list[str]:
    return [t.prompt for t in tree.path()]


def test_append_builds_the_active_path_and_labels_positions() -> None:
    tree = ConversationTree()
    for p in "abc":
        add(tree, p)
    assert prompts(tree) == ["a", "b", "c"]
    assert [tree.label(t.id) for t in tree.path()] == ["1", "2", "3"]
    assert tree.branches == {"main": 3}


def test_fork_creates_branch_at_position_and_switches() -> None:
    tree = ConversationTree()
    for p in "abc":
        add(tree, p)
    assert tree.fork(1, "pricing") == "pricing"
    assert tree.current == "pricing" and prompts(tree) == ["a"]
    add(tree, "d")
    assert prompts(tree) == ["a", "d"]
    assert tree.label(tree.head) == "2.2"  # second version of position 2
    assert tree.switch("main") == "main" and prompts(tree) == ["a", "b", "c"]
    assert tree.label(2) == "2.1"


def test_fork_zero_and_default_names() -> None:
    tree = ConversationTree()
    add(tree, "a")
    assert tree.fork(0) == "fork-1" and tree.path() == []
    assert tree.fork(0) == "fork-2"


@pytest.mark.parametrize("position", [-1, 4, 99])
def test_fork_out_of_range_changes_nothing(position: int) -> None:
    tree = ConversationTree()
    for p in "abc":
        add(tree, p)
    before = (dict(tree.branches), tree.current)
    with pytest.raises(
        ConversationError, match=r"out of range: the active path has 3 turn\(s\) \(use 0–3\)"
    ):
        tree.fork(position)
    assert (dict(tree.branches), tree.current) == before


def test_fork_name_rules() -> None:
    tree = ConversationTree()
    add(tree, "a")
    with pytest.raises(ConversationError, match="exists already"):
        tree.fork(1, "main")
    with pytest.raises(UsageError, match="bad branch name"):
        tree.fork(1, "has space")
    assert tree.branches == {"main": 1}


def test_switch_to_turn_id_and_version() -> None:
    tree = ConversationTree()
    for p in "abc":
        add(tree, p)
    tree.undo()
    add(tree, "c2")
    assert tree.label(tree.head) == "3.2"
    assert tree.switch("3.1") == "at-3"
    assert prompts(tree) == ["a", "b", "c"]
    assert tree.switch("#4") == "main"  # a branch already points at #4
    with pytest.raises(ConversationError, match="no branch named 'nope'"):
        tree.switch("nope")
    with pytest.raises(ConversationError, match="no turn #42"):
        tree.switch("#42")
    with pytest.raises(ConversationError, match="has 2 version"):
        tree.switch("3.7")


def test_undo_keeps_the_turn() -> None:
    tree = ConversationTree()
    add(tree, "a")
    undone = tree.undo()
    assert tree.path() == [] and undone.id in tree.turns
    with pytest.raises(ConversationError, match="nothing to undo"):
        tree.undo()


def test_rerun_rewinds_and_keeps_old_line_as_branch() -> None:
    tree = ConversationTree()
    for i, p in enumerate("abcd"):
        add(tree, p, cell=f"cell{i}")
    second = tree.owned_on_path("cell1")
    assert second is not None and second.prompt == "b"
    kept = tree.rewind_for_rerun(second.id)
    assert kept == "main@1" and [t.prompt for t in tree.ancestry(tree.branches["main@1"])] == list(
        "abcd"
    )
    add(tree, "b2", cell="cell1")
    assert prompts(tree) == ["a", "b2"] and tree.label(tree.head) == "2.2"
    # Cells 3 and 4 own turns that are no longer on the path: they append.
    assert tree.owned_on_path("cell2") is None
    tree.check_invariants()


def test_rerun_of_last_turn_makes_a_sibling_without_a_branch() -> None:
    tree = ConversationTree()
    add(tree, "a", cell="x")
    kept = tree.rewind_for_rerun(1)
    assert kept is None and tree.head is None
    add(tree, "a again", cell="x")
    assert tree.label(2) == "1.2" and tree.label(1) == "1.1"


def test_resolve_errors_are_one_line() -> None:
    tree = ConversationTree()
    with pytest.raises(UsageError, match="bad turn reference"):
        tree.resolve("abc")
    with pytest.raises(UsageError, match="write it as #7"):
        tree.resolve("#x")


class TreeMachine(RuleBasedStateMachine):
    """Any sequence of operations keeps the tree's invariants; nothing is ever lost."""

    @initialize()
    def start(self) -> None:
        self.tree = ConversationTree()
        self.ever: dict[int, Turn] = {}
        self.cells = 0

    @rule(cell=st.sampled_from([None, "c1", "c2", "c3"]))
    def append(self, cell: str | None) -> None:
        self.cells += 1
        turn = add(self.tree, f"p{self.cells}", cell)
        self.ever[turn.id] = turn

    @rule()
    def append_interrupted_before_any_text(self) -> None:
        self.cells += 1
        turn = self.tree.append(
            Turn(id=self.tree.new_turn_id(), parent=None, prompt=f"p{self.cells}", answer="",
                 status="interrupted")
        )
        self.ever[turn.id] = turn

    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(-1, len(self.tree.path()) + 1))
        try:
            self.tree.fork(n)
        except ConversationError:
            assert not 0 <= n <= len(self.tree.path())

    @rule(data=st.data())
    def switch(self, data: st.DataObject) -> None:
        choices = sorted(self.tree.branches) + [f"#{i}" for i in self.tree.turns]
        self.tree.switch(data.draw(st.sampled_from(choices)))

    @precondition(lambda self: self.tree.head is not None)
    @rule()
    def undo(self) -> None:
        self.tree.undo()

    @rule(cell=st.sampled_from(["c1", "c2", "c3"]))
    def rerun(self, cell: str) -> None:
        owned = self.tree.owned_on_path(cell)
        if owned is not None:
            old_path = [t.id for t in self.tree.path()]
            kept = self.tree.rewind_for_rerun(owned.id)
            assert self.tree.head == owned.parent
            if kept is not None:
                assert [t.id for t in self.tree.ancestry(self.tree.branches[kept])] == old_path
            self.append(cell)

    @invariant()
    def structure(self) -> None:
        self.tree.check_invariants()  # acyclic, every turn reachable, branches valid

    @invariant()
    def nothing_deleted(self) -> None:
        assert self.tree.turns == self.ever

    @invariant()
    def head_reachable_and_path_consistent(self) -> None:
        path = self.tree.path()
        assert (path[-1].id if path else None) == self.tree.head
        for parent, child in itertools.pairwise(path):
            assert child.parent == parent.id
        assert [self.tree.depth(t.id) for t in path] == list(range(1, len(path) + 1))
        # every label the widget shows is unique and names its turn for `%convo switch`
        on_path = {t.id for t in path}
        labels = {turn_id: self.tree.tree_label(turn_id, on_path) for turn_id in self.tree.turns}
        assert len(set(labels.values())) == len(labels), labels
        for turn_id, label in labels.items():
            assert self.tree.resolve(label) == turn_id, (label, turn_id)
        # the cached count of exchanges equals counting the path afresh (turns with text)
        assert self.tree.exchanges(self.tree.head) == sum(1 for t in path if t.answer)


TreeMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_tree_state_machine = TreeMachine.TestCase


def test_a_fork_cell_rerun_recreates_its_branch_and_keeps_the_old_one() -> None:
    tree = ConversationTree()
    add(tree, "a", "c1")
    add(tree, "b", "c2")
    assert tree.fork(1, "alt", cell="f") == "alt"
    add(tree, "alt b", "c4")
    assert tree.path()[-1].branch == "alt" and tree.turns[1].branch == "main"
    tree.switch("main")
    assert tree.fork(2, "alt", cell="f") == "alt"  # the same cell again: re-created here
    assert tree.branches["alt@1"] == 3 and tree.branches["alt"] == 2
    assert tree.current == "alt" and tree.branch_cells == {"alt": "f"}
    assert tree.fork(0, cell="g") == "fork-1"  # unnamed: a default name, owned by g
    assert tree.fork(0, cell="g") == "fork-1" and "fork-1@1" in tree.branches
    with pytest.raises(ConversationError, match="branch 'alt' exists already"):
        tree.fork(0, "alt", cell="another")  # a name another cell made is still taken
    with pytest.raises(ConversationError, match="branch 'alt' exists already"):
        tree.fork(0, "alt")  # and so it is for a fork with no cell
    tree.check_invariants()


def test_a_turn_cell_rerun_goes_back_to_the_branch_its_turn_was_made_on() -> None:
    tree = ConversationTree()
    one = add(tree, "a", "c1")
    add(tree, "b", "c2")
    tree.fork(1, "alt", cell="f")
    add(tree, "alt b", "c4")
    assert tree.owned_on_its_branch("c1") == one  # on main's path, though alt is current
    assert tree.owned_on_its_branch("c2").prompt == "b"  # type: ignore[union-attr]
    tree.switch("main")
    tree.rewind_for_rerun(one.id)  # c1 rerun: main moves to the root, old line kept
    assert tree.owned_on_its_branch("c2") is None  # no longer on main: appended instead
    assert tree.is_ancestor(one.id, tree.branches["main@1"])
    assert not tree.is_ancestor(tree.branches["alt"], tree.branches["main@1"])
