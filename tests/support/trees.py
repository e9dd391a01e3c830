"""Random conversation trees for property tests: a list of operations and a builder."""

from __future__ import annotations

from hypothesis import strategies as st

from nbconvo._tree import ConversationTree, Turn

operations = st.lists(
    st.tuples(st.sampled_from(["add", "fork", "switch", "undo", "rerun"]), st.integers(0, 50),
              st.text(max_size=20)),
    max_size=40,
)


def build(ops: list[tuple[str, int, str]]) -> ConversationTree:
    tree = ConversationTree()
    for op in ops:
        build_step(tree, op)
    return tree


def build_step(tree: ConversationTree, op: tuple[str, int, str]) -> ConversationTree:
    """One random operation on a tree, in place."""
    name, n, text = op
    path = tree.path()
    if name == "add" or not tree.turns:
        tree.append(Turn(id=tree.new_turn_id(), parent=None, prompt=text, answer=text[::-1],
                         status=["ok", "error", "interrupted"][n % 3], cell_id=f"c{n % 4}",
                         params={"temperature": n / 10}, usage_exact=bool(n % 2)))
    elif name == "fork":
        tree.fork(n % (len(path) + 1))
    elif name == "switch":
        tree.switch(f"#{1 + n % len(tree.turns)}")
    elif name == "undo" and path:
        tree.undo()
    elif name == "rerun" and path:
        tree.rewind_for_rerun(path[n % len(path)].id)
    return tree
