"""ConvoWidget in the kernel: what it sends (snapshot, deltas, state), what it does with
the front end's requests, and that its deltas do not grow with the tree. The front end
itself is tested by vitest (js/test) and in a real browser (test_widget_browser.py)."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
from comm.base_comm import BaseComm
from IPython.core.interactiveshell import InteractiveShell

import nbconvo
from nbconvo._conversation import Conversation
from nbconvo._tree import Turn
from nbconvo._widget import ConvoWidget
from tests.support.fakes.openai_server import FakeOpenAI


class RecordingComm(BaseComm):
    """A comm that keeps what the widget sends instead of publishing it to a front end."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        if msg_type == "comm_msg":
            self.sent.append(data)

    def custom(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            m["content"]
            for m in self.sent
            if m.get("method") == "custom" and (kind is None or m["content"]["kind"] == kind)
        ]

    def state(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for m in self.sent:
            if m.get("method") == "update":
                merged.update(m["state"])
        return merged

    def wire_bytes(self) -> int:
        return sum(len(json.dumps(m, separators=(",", ":"))) for m in self.sent)

    def clear(self) -> None:
        self.sent.clear()


def record(widget: ConvoWidget) -> RecordingComm:
    comm = RecordingComm(target_name="jupyter.widget", comm_id=widget.comm.comm_id)
    widget.comm = comm
    return comm


def from_view(widget: ConvoWidget, content: dict[str, Any]) -> None:
    """Deliver a custom message the way the kernel's comm does."""
    msg = {
        "content": {
            "comm_id": widget.comm.comm_id,
            "data": {"method": "custom", "content": content},
        },
        "buffers": [],
    }
    widget.comm.handle_msg(msg)


def add_turns(convo: Conversation, n: int) -> None:
    tree = convo.tree
    for _ in range(n):
        tree.append(
            Turn(
                id=tree.new_turn_id(),
                parent=None,
                prompt="a question " * 20,
                answer="an answer " * 50,
            )
        )


@pytest.fixture
def convo_shell(shell: InteractiveShell, fake_openai: FakeOpenAI) -> Iterator[InteractiveShell]:
    assert shell.run_cell("%convo model openai:gpt-test").success
    yield shell
    for widget in list(ConvoWidget._instances.values()):
        widget.close()


def turn(shell: InteractiveShell, text: str) -> None:
    result = shell.run_cell(f"%%turn\n{text}")
    assert result.success, result.error_in_exec


def test_one_widget_per_conversation(convo_shell: InteractiveShell) -> None:
    convo = nbconvo.current()
    widget = nbconvo.widget(convo)
    assert nbconvo.widget(convo) is widget
    assert nbconvo.widget(Conversation(name="other")) is not widget
    assert "application/vnd.jupyter.widget-view+json" in widget._repr_mimebundle_()[0]
    assert repr(widget).startswith("ConvoWidget(<Conversation 'default'")


def test_bare_convo_displays_the_widget(convo_shell: InteractiveShell) -> None:
    outputs = convo_shell.display_pub.outputs
    outputs.clear()
    assert convo_shell.run_cell("%convo").success
    widget, picture = (o["data"] for o in outputs[-2:])  # the live widget, then its picture
    view = widget["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == nbconvo.widget().model_id
    assert "ConvoWidget" in widget["text/plain"]
    assert picture["text/html"].startswith('<div class="nbconvo-static mathjax_ignore tex2jax_ignore"')


def test_a_turn_sends_one_small_delta_and_the_new_state(convo_shell: InteractiveShell) -> None:
    turn(convo_shell, "one")
    widget = nbconvo.widget()
    comm = record(widget)
    turn(convo_shell, "two <img src=x onerror=alert(1)>")
    [delta] = comm.custom()
    assert delta["kind"] == "nodes"
    [node] = delta["nodes"]
    assert node == {
        "id": 2,
        "parent": 1,
        "kind": "turn",
        "status": "ok",
        "preview": "two <img src=x onerror=alert(1)>",  # text: the view sets textContent
        "tokens_in": node["tokens_in"],
        "tokens_out": node["tokens_out"],
        "exact": True,
    }
    state = comm.state()
    assert state["head"] == 2
    assert state["branches"] == {"main": 2}
    assert state["exchanges"] == 2
    assert state["meter"]["used"] > 0 and state["meter"]["state"] in ("ok", "unknown")


def test_snapshot_details_and_actions(convo_shell: InteractiveShell) -> None:
    for text in ("one", "two", "three"):
        turn(convo_shell, text)
    convo = nbconvo.current()
    widget = nbconvo.widget(convo)
    comm = record(widget)

    from_view(widget, {"kind": "snapshot-request", "id": "r1"})
    [snap] = comm.custom("snapshot")
    assert snap["id"] == "r1"
    assert [(n["id"], n["parent"]) for n in snap["nodes"]] == [(1, None), (2, 1), (3, 2)]

    from_view(widget, {"kind": "details-request", "id": "r2", "turn": 2})
    [details] = comm.custom("details")
    assert details["id"] == "r2"
    assert (details["prompt"], details["answer"], details["label"]) == ("two", "echo #2: two", "2")
    assert details["model"] == "openai:gpt-test"

    comm.clear()
    from_view(widget, {"kind": "fork", "id": "r3", "turn": 1})
    assert comm.custom("action-result") == [
        {"kind": "action-result", "id": "r3", "action": "fork", "branch": "fork-1", "head": 1}
    ]
    assert (convo.branch, convo.tree.head) == ("fork-1", 1)
    assert comm.state()["head"] == 1 and comm.state()["branch"] == "fork-1"

    from_view(widget, {"kind": "switch", "id": "r4", "turn": 3})
    assert comm.custom("action-result")[-1]["branch"] == "main"
    assert convo.tree.head == 3

    turn(convo_shell, "four")  # the kernel keeps working after actions from the widget
    assert convo.tree.label(convo.tree.head or 0) == "4"


def test_fork_here_takes_a_name_and_refuses_a_bad_one(convo_shell: InteractiveShell) -> None:
    for text in ("one", "two"):
        turn(convo_shell, text)
    convo = nbconvo.current()
    widget = nbconvo.widget(convo)
    comm = record(widget)
    from_view(widget, {"kind": "fork", "id": "r1", "turn": 1, "name": " pricing "})
    assert comm.custom("action-result")[-1]["branch"] == "pricing"
    assert (convo.branch, convo.tree.head) == ("pricing", 1)
    for bad in ("no spaces allowed", 42):
        from_view(widget, {"kind": "fork", "id": "r2", "turn": 2, "name": bad})
        [error] = comm.custom("error")[-1:]
        assert error["id"] == "r2" and "\n" not in error["message"]
    assert convo.branch == "pricing" and set(convo.branches) == {"main", "pricing"}


def test_details_list_a_prompts_values_and_images_with_thumbnails(
    convo_shell: InteractiveShell, fake_openai: FakeOpenAI
) -> None:
    import base64
    import io

    import pandas as pd
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (800, 400), "navy").save(picture, format="PNG")
    convo_shell.user_ns["df"] = pd.DataFrame({"a": [1, 2]})
    convo_shell.user_ns["pic"] = Image.open(io.BytesIO(picture.getvalue()))
    turn(convo_shell, "Compare {df} and {pic}")
    widget = nbconvo.widget(nbconvo.current())
    comm = record(widget)
    from_view(widget, {"kind": "details-request", "id": "r1", "turn": 1})
    [details] = comm.custom("details")
    assert details["prompt"] == "Compare {df} and {pic}"
    value, image = details["attachments"]
    assert value["kind"] == "data" and value["name"] == "df"
    assert value["summary"] == "pandas DataFrame, 2 × 1" and "| 1 | 2 |" in value["markdown"]
    assert (image["kind"], image["name"], image["summary"]) == ("image", "pic", "image 800 × 400 px")
    assert image["thumbnail"].startswith("data:image/png;base64,")
    small = Image.open(io.BytesIO(base64.b64decode(image["thumbnail"].partition(",")[2])))
    assert small.size == (160, 80)  # the kernel's thumbnail, not the image


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"kind": "fork", "id": "e1", "turn": 99}, "there is no turn #99"),
        ({"kind": "switch", "id": "e2", "turn": "1"}, "the turn must be a turn id"),
        ({"kind": "details-request", "id": "e3", "turn": True}, "the turn must be a turn id"),
        ({"kind": "launch", "id": "e4", "turn": 1}, "unknown request 'launch'"),
        ({"id": "e5"}, "unknown request None"),
    ],
)
def test_bad_requests_come_back_as_errors(
    convo_shell: InteractiveShell, content: dict[str, Any], message: str
) -> None:
    turn(convo_shell, "one")
    convo = nbconvo.current()
    widget = nbconvo.widget(convo)
    comm = record(widget)
    before = (dict(convo.branches), convo.branch)
    from_view(widget, content)
    [error] = comm.custom("error")
    assert error["id"] == content["id"]
    assert message in error["message"]
    assert (dict(convo.branches), convo.branch) == before


def test_fork_here_on_a_taken_name_is_an_error_as_data(convo_shell: InteractiveShell) -> None:
    turn(convo_shell, "one")
    widget = nbconvo.widget()
    comm = record(widget)
    from_view(widget, {"kind": "fork", "id": "a", "turn": 1})
    from_view(widget, {"kind": "fork", "id": "b", "turn": 1})
    assert [m["branch"] for m in comm.custom("action-result")] == ["fork-1", "fork-2"]


def test_magics_update_the_widget(convo_shell: InteractiveShell) -> None:
    for text in ("one", "two"):
        turn(convo_shell, text)
    widget = nbconvo.widget()
    comm = record(widget)
    assert convo_shell.run_cell("%convo fork 1 --name side").success
    assert comm.state()["branch"] == "side" and comm.state()["head"] == 1
    # goal and budget notify no listener: the widget refreshes after each cell
    assert convo_shell.run_cell("%convo goal Ship the playbook\n").success
    assert convo_shell.run_cell("%convo budget 4").success
    assert (widget.goal, widget.budget) == ("Ship the playbook", 4)
    assert comm.state()["goal"] == "Ship the playbook"
    comm.clear()
    assert convo_shell.run_cell("%convo undo").success
    assert comm.state()["head"] is None
    assert comm.custom() == []  # no new turns: state only


def test_reset_and_compact_send_the_new_turns(convo_shell: InteractiveShell) -> None:
    for text in ("one", "two", "three"):
        turn(convo_shell, text)
    widget = nbconvo.widget()
    comm = record(widget)
    assert convo_shell.run_cell("%convo compact --keep 1").success
    [delta] = comm.custom("nodes")
    assert [n["kind"] for n in delta["nodes"]] == ["summary", "turn"]
    comm.clear()
    assert convo_shell.run_cell("%convo reset").success
    assert comm.custom() == [{"kind": "reset", "seq": delta["seq"] + 1}]
    assert comm.state()["head"] is None
    turn(convo_shell, "again")
    [after] = comm.custom("nodes")
    assert after["seq"] == delta["seq"] + 2
    assert after["nodes"][0]["id"] == 1


def test_delta_bytes_do_not_grow_with_the_tree(convo_shell: InteractiveShell) -> None:
    sizes = {}
    for n in (10, 1000):
        convo = nbconvo._session.SESSION.new(f"size{n}")
        convo.window = 1_000_000
        add_turns(convo, n)
        widget = nbconvo.widget(convo)
        comm = record(widget)
        turn(convo_shell, "how big is this delta?")
        sizes[n] = comm.wire_bytes()
        assert len(comm.custom("nodes")) == 1
    # A few more digits in ids and token counts; nothing that scales with the tree.
    assert sizes[1000] - sizes[10] <= 40, sizes
    assert sizes[1000] < 600, sizes


def test_a_widget_failure_never_fails_a_turn(
    convo_shell: InteractiveShell, caplog: pytest.LogCaptureFixture
) -> None:
    widget = nbconvo.widget()

    class Broken(RecordingComm):
        def publish_msg(
            self,
            msg_type: str,
            data: Any = None,
            metadata: Any = None,
            buffers: Any = None,
            **keys: Any,
        ) -> None:
            if msg_type == "comm_msg":
                raise RuntimeError("front end gone")

    widget.comm = Broken(target_name="jupyter.widget", comm_id=widget.comm.comm_id)
    turn(convo_shell, "still works")
    assert nbconvo.current().tree.head == 1
    assert "could not update" in caplog.text
    widget.comm = RecordingComm(target_name="jupyter.widget", comm_id=widget.comm.comm_id)


def test_widget_closes_with_its_conversation() -> None:
    convo = Conversation(name="short-lived")
    widget = nbconvo.widget(convo)
    assert widget.comm is not None
    del convo
    gc.collect()
    assert widget.comm is None
    assert widget.conversation is None


def test_changes_without_an_event_show_after_the_cell(convo_shell: InteractiveShell) -> None:
    turn(convo_shell, "one")
    convo = nbconvo.current()
    widget = nbconvo.widget(convo)
    comm = record(widget)
    add_turns(convo, 2)  # no listener is told (as when a tree is edited directly)
    assert comm.custom() == []
    assert convo_shell.run_cell("pass").success
    [delta] = comm.custom("nodes")
    assert [n["id"] for n in delta["nodes"]] == [2, 3]
    assert comm.state()["head"] == 3


def test_bare_convo_leaves_a_static_picture_of_the_tree(convo_shell: InteractiveShell) -> None:
    from bs4 import BeautifulSoup

    for text in ("one <b>two</b>", "three"):
        turn(convo_shell, text)
    assert convo_shell.run_cell("%convo fork 1 --name alt").success
    turn(convo_shell, "four")
    convo_shell.display_pub.reset()
    assert convo_shell.run_cell("%convo").success
    picture = next(h for h in convo_shell.display_pub.html() if "nbconvo-static" in h)
    soup = BeautifulSoup(picture, "html.parser")
    head = soup.select_one(".nbconvo-static > div")
    assert head is not None and head.get_text().startswith(
        "default · branch alt · 2 exchanges · 3 turns in the tree · "
    )
    rows = [[td.get_text(" ", strip=True) for td in tr.find_all("td")] for tr in soup.find_all("tr")]
    assert [r[0] for r in rows] == ["1", "2.1", "2.2"]  # the widget's labels, in its order
    assert rows[0][1] == "one <b>two</b>" and soup.find("b") is None  # model text escaped
    assert rows[1][1] == "three main" and rows[2][1] == "four alt"  # each tip's branch
