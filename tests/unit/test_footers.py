"""Outputs that stay true (issue #14): a footer whose turn leaves the active path says
where the turn is now, in its own cell, and reads as before once it is back."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell

from tests.support.fakes.openai_server import FakeOpenAI


def footers(shell: InteractiveShell) -> dict[str, str]:
    """Each footer shown so far, by the turn it starts with ("turn 2 · …")."""
    out = {}
    for text in shell.display_pub.plain():
        if text.startswith("turn "):
            out[text.split(" · ")[0]] = text
    return out


def run(shell: InteractiveShell, source: str, cell_id: str) -> None:
    assert shell.run_cell(source, cell_id=cell_id).success


def test_a_rerun_above_marks_the_turns_below_and_a_switch_back_clears_it(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    run(convo_shell, "%%turn\nfirst", "c1")
    run(convo_shell, "%%turn\nsecond", "c2")
    run(convo_shell, "%%turn\nthird", "c3")
    assert not any("⟲" in f for f in footers(convo_shell).values())
    run(convo_shell, "%%turn\nfirst, again", "c1")  # the cell above is rerun: 1.2
    shown = footers(convo_shell)
    for label in ("turn 2", "turn 3"):
        assert shown[label].endswith(
            " · ⟲ now on main@1 — not the active path of main; rerun to continue there"
        ), shown[label]
    assert "⟲" not in shown["turn 1.2"]
    run(convo_shell, "%convo switch main@1", "s1")  # back to the first generation
    shown = footers(convo_shell)
    assert "⟲" not in shown["turn 2"] and "⟲" not in shown["turn 3"]
    outputs = convo_shell.display_pub.outputs
    assert (
        sum(1 for o in outputs if o["data"]["text/plain"].startswith("turn 2 ·")) == 1
    )  # updated in place


def test_turns_on_the_path_leave_the_footers_off_it_alone(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    """A notebook rerun many times holds many turns off the path: a new turn sends no
    update to their footers (only its own footer is shown), so a turn costs the same
    however many reruns came before."""
    for n in range(1, 4):
        run(convo_shell, f"%%turn\nquestion {n}", f"c{n}")
    for _ in range(3):  # each rerun of the first cell leaves turns 2 and 3 behind again
        run(convo_shell, "%%turn\nquestion 1, again", "c1")
        run(convo_shell, "%%turn\nquestion 2, again", "c2")
    publisher = convo_shell.display_pub
    before = len(publisher.updated)
    run(convo_shell, "%%turn\nquestion 3, again", "c3")
    run(convo_shell, "%%turn\nquestion 4", "c4")
    footer_updates = [t for t in publisher.updated[before:] if t.startswith("turn ")]
    assert footer_updates == []  # only the answers, each shown in its own output
    noted = [t for t in publisher.plain() if "⟲" in t]
    assert len(noted) >= 4  # the turns the reruns left behind still say so
    assert all(t.endswith("not the active path of main; rerun to continue there") for t in noted)
