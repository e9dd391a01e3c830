"""The messages between ``ConvoWidget`` and its front end (mirrored in js/src/protocol.ts).

Small, always-current state (head, branch, branches, meter, goal, budget) is synced as
traits. The turns go over custom messages: a ``snapshot`` of every node when a view asks
for one, then ``nodes`` deltas carrying only the turns that are new, so the bytes sent per
turn do not grow with the tree. Each tree-changing message carries ``seq``; a view that
sees a gap asks for a new snapshot. Requests from a view carry an ``id`` and are answered
with a reply carrying that id, or an ``error`` message: errors come back as data.

Pure data: no IPython, no anywidget.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from nbconvo._errors import UsageError
from nbconvo._images import size_of, thumbnail
from nbconvo._meter import State, TokenMeter
from nbconvo._parts import DataPart, DocumentPart, ImagePart, Part
from nbconvo._transcript import answer_markdown
from nbconvo._tree import ConversationTree, Kind, Status, Turn

PREVIEW_CHARS = 80


class NodeInfo(TypedDict):
    """One turn as the tree view needs it: no full text (that comes with ``details``)."""

    id: int
    parent: int | None
    kind: Kind
    status: Status
    preview: str  # first words of the prompt, whitespace collapsed
    tokens_in: int
    tokens_out: int
    exact: bool


class MeterInfo(TypedDict):
    used: int
    window: int | None
    exact: bool
    fraction: float | None
    state: State


# --- kernel → front end -------------------------------------------------------------------
class SnapshotMessage(TypedDict):
    kind: Literal["snapshot"]
    id: str  # the request it answers
    seq: int
    nodes: list[NodeInfo]  # in creation order: a parent always comes before its children


class NodesMessage(TypedDict):
    kind: Literal["nodes"]
    seq: int
    nodes: list[NodeInfo]  # turns added since the previous message


class ResetMessage(TypedDict):
    kind: Literal["reset"]
    seq: int  # the tree was replaced by an empty one


class AttachmentInfo(TypedDict):
    """A prompt's notebook value or image, as the details show it."""

    kind: Literal["data", "image", "document"]
    name: str  # the {expression} or file it came from; untrusted (shown as text)
    summary: str  # "pandas DataFrame, 1,000 × 12" or "image 640 × 480 px"
    markdown: str  # a data part's text (untrusted: sanitized Markdown); "" for images
    thumbnail: str  # an image's thumbnail as a PNG data URL drawn here; "" for data


class DetailsMessage(TypedDict):
    kind: Literal["details"]
    id: str
    turn: int
    label: str
    prompt: str  # untrusted: the front end renders it as sanitized Markdown
    answer: str  # untrusted, likewise
    model: str
    status: Status
    error: str | None
    attachments: list[AttachmentInfo]


class ActionResultMessage(TypedDict):
    kind: Literal["action-result"]
    id: str
    action: Literal["switch", "fork"]
    branch: str
    head: int | None


class ErrorMessage(TypedDict):
    kind: Literal["error"]
    id: str
    message: str


KernelMessage = (
    SnapshotMessage
    | NodesMessage
    | ResetMessage
    | DetailsMessage
    | ActionResultMessage
    | ErrorMessage
)


# --- front end → kernel -------------------------------------------------------------------
class SnapshotRequest(TypedDict):
    kind: Literal["snapshot-request"]
    id: str


class DetailsRequest(TypedDict):
    kind: Literal["details-request"]
    id: str
    turn: int


class ActionRequest(TypedDict, total=False):
    kind: Literal["switch", "fork"]
    id: str
    turn: int
    name: str  # "fork": the new branch's name (absent or "": fork-N)


ViewMessage = SnapshotRequest | DetailsRequest | ActionRequest


# --- building messages from the tree --------------------------------------------------------
def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def node_info(turn: Turn) -> NodeInfo:
    return NodeInfo(
        id=turn.id,
        parent=turn.parent,
        kind=turn.kind,
        status=turn.status,
        preview=preview(turn.prompt or turn.answer),
        tokens_in=turn.input_tokens,
        tokens_out=turn.output_tokens,
        exact=turn.usage_exact,
    )


def meter_info(meter: TokenMeter) -> MeterInfo:
    return MeterInfo(
        used=meter.used,
        window=meter.window,
        exact=meter.exact,
        fraction=None if meter.fraction is None else round(meter.fraction, 4),
        state=meter.state,
    )


def snapshot(tree: ConversationTree, request_id: str, seq: int) -> SnapshotMessage:
    nodes = [node_info(turn) for turn in tree.turns.values()]
    return SnapshotMessage(kind="snapshot", id=request_id, seq=seq, nodes=nodes)


def details(tree: ConversationTree, request_id: str, turn_id: int) -> DetailsMessage:
    turn = tree.turn(turn_id)
    return DetailsMessage(
        kind="details",
        id=request_id,
        turn=turn.id,
        label=tree.tree_label(turn.id),
        prompt=turn.prompt,
        answer=answer_markdown(turn),
        model=f"{turn.provider}:{turn.model}" if turn.provider else turn.model,
        status=turn.status,
        error=turn.error,
        attachments=[a for a in map(attachment_info, turn.prompt_parts) if a is not None],
    )


def attachment_info(part: Part) -> AttachmentInfo | None:
    if isinstance(part, DataPart):
        return AttachmentInfo(
            kind="data",
            name=part.expression,
            summary=part.summary or "notebook value",
            markdown=part.text,
            thumbnail="",
        )
    if isinstance(part, DocumentPart):
        pages = f"{part.pages:,} page{'s' if part.pages != 1 else ''}"
        return AttachmentInfo(
            kind="document", name=part.name or "document", summary=f"PDF, {pages}",
            markdown="", thumbnail="",
        )  # fmt: skip
    if isinstance(part, ImagePart):
        try:
            width, height = size_of(part)
            small = thumbnail(part)
        except UsageError:
            return AttachmentInfo(
                kind="image", name=part.name or "image", summary="unreadable image",
                markdown="", thumbnail="",
            )  # fmt: skip
        return AttachmentInfo(
            kind="image",
            name=part.name or "image",
            summary=f"image {width:,} × {height:,} px",
            markdown="",
            thumbnail=small.data_url(),
        )
    return None


__all__ = [
    "ActionRequest",
    "ActionResultMessage",
    "DetailsMessage",
    "DetailsRequest",
    "ErrorMessage",
    "KernelMessage",
    "MeterInfo",
    "NodeInfo",
    "NodesMessage",
    "ResetMessage",
    "SnapshotMessage",
    "SnapshotRequest",
    "ViewMessage",
    "details",
    "meter_info",
    "node_info",
    "preview",
    "snapshot",
]
