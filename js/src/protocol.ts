// The messages between the kernel (nbconvo/_widget_protocol.py) and this front end.
// Keep the two files in step: every message is a plain object tagged by `kind`.

export type Status = "ok" | "interrupted" | "error";
export type Kind = "turn" | "summary";
export type MeterState = "ok" | "warn" | "over" | "unknown";

/** One turn as the tree view needs it; the full text comes with `details`. */
export interface NodeInfo {
  id: number;
  parent: number | null;
  kind: Kind;
  status: Status;
  preview: string; // untrusted text: only ever set as textContent
  tokens_in: number;
  tokens_out: number;
  exact: boolean;
}

export interface MeterInfo {
  used: number;
  window: number | null;
  exact: boolean;
  fraction: number | null;
  state: MeterState;
}

// --- kernel → front end -------------------------------------------------------------
export interface SnapshotMessage {
  kind: "snapshot";
  id: string;
  seq: number;
  nodes: NodeInfo[];
}

export interface NodesMessage {
  kind: "nodes";
  seq: number;
  nodes: NodeInfo[];
}

export interface ResetMessage {
  kind: "reset";
  seq: number;
}

export interface AttachmentInfo {
  kind: "data" | "image" | "document";
  name: string; // untrusted: set as text
  summary: string;
  markdown: string; // a notebook value's text: untrusted, rendered as sanitized Markdown
  thumbnail: string; // an image's PNG thumbnail, drawn by the kernel: a data: URL or ""
}

export interface DetailsMessage {
  kind: "details";
  id: string;
  turn: number;
  label: string;
  prompt: string; // untrusted: rendered as sanitized Markdown
  answer: string; // untrusted, likewise
  model: string;
  status: Status;
  error: string | null;
  attachments?: AttachmentInfo[];
}

export interface ActionResultMessage {
  kind: "action-result";
  id: string;
  action: "switch" | "fork";
  branch: string;
  head: number | null;
}

export interface ErrorMessage {
  kind: "error";
  id: string;
  message: string;
}

export type TreeMessage = SnapshotMessage | NodesMessage | ResetMessage;
export type ReplyMessage = DetailsMessage | ActionResultMessage | ErrorMessage;
export type KernelMessage = TreeMessage | ReplyMessage;

// --- front end → kernel -------------------------------------------------------------
export interface SnapshotRequest {
  kind: "snapshot-request";
  id: string;
}

export interface DetailsRequest {
  kind: "details-request";
  id: string;
  turn: number;
}

export interface ActionRequest {
  kind: "switch" | "fork";
  id: string;
  turn: number;
  name?: string; // "fork": the new branch's name ("" or absent: fork-N)
}

export type ViewMessage = SnapshotRequest | DetailsRequest | ActionRequest;

// --- synced traits (small state) ----------------------------------------------------
export interface WidgetState {
  name: string;
  head: number | null;
  branch: string;
  branches: Record<string, number | null>;
  meter: MeterInfo | Record<string, never>;
  goal: string | null;
  budget: number | null;
  exchanges: number;
  cost: string; // "branch $0.12 · tree $0.40", or "" while everything is free
}

/** The part of anywidget's model this widget uses (a fake implements it in tests). */
export interface WidgetModel {
  get<K extends keyof WidgetState>(key: K): WidgetState[K];
  on(event: string, callback: (...args: never[]) => void): void;
  off(event: string, callback: (...args: never[]) => void): void;
  send(content: ViewMessage): void;
}

const KINDS = new Set(["snapshot", "nodes", "reset", "details", "action-result", "error"]);

/** Narrow an incoming custom message; anything else is ignored. */
export function isKernelMessage(value: unknown): value is KernelMessage {
  return (
    typeof value === "object" &&
    value !== null &&
    KINDS.has(String((value as { kind?: unknown }).kind))
  );
}
