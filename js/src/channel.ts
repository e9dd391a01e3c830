// One per widget model: routes custom messages to the tree store or to the request that
// waits for the reply, and tells the views when the tree changed.

import {
  isKernelMessage,
  type ActionResultMessage,
  type DetailsMessage,
  type ReplyMessage,
  type WidgetModel,
} from "./protocol";
import { TreeStore } from "./store";

let counter = 0;
function requestId(): string {
  counter += 1;
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${counter}`;
}

/** A request the kernel answered with an `error` message. */
export class KernelError extends Error {}

interface Waiting {
  resolve: (reply: ReplyMessage) => void;
  reject: (error: Error) => void;
}

export class Channel {
  readonly store = new TreeStore();
  private readonly waiting = new Map<string, Waiting>();
  // Turns never change, so their details are kept — until a reset reuses the ids.
  private readonly detailsCache = new Map<number, DetailsMessage>();
  private epoch = 0; // bumped when the cache is cleared
  private readonly listeners = new Set<() => void>();
  private readonly onCustom = (content: unknown): void => this.receive(content);

  constructor(private readonly model: WidgetModel) {
    model.on("msg:custom", this.onCustom);
  }

  dispose(): void {
    this.model.off("msg:custom", this.onCustom);
    for (const waiting of this.waiting.values()) waiting.reject(new Error("widget closed"));
    this.waiting.clear();
    this.listeners.clear();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  requestSnapshot(): void {
    const id = requestId();
    this.store.expectSnapshot(id);
    this.model.send({ kind: "snapshot-request", id });
  }

  cachedDetails(turn: number): DetailsMessage | undefined {
    return this.detailsCache.get(turn);
  }

  async details(turn: number): Promise<DetailsMessage> {
    const cached = this.detailsCache.get(turn);
    if (cached !== undefined) return cached;
    const epoch = this.epoch;
    const reply = await this.request<DetailsMessage>("details", (id) =>
      this.model.send({ kind: "details-request", id, turn }),
    );
    if (epoch === this.epoch) this.detailsCache.set(turn, reply);
    return reply;
  }

  act(action: "switch" | "fork", turn: number, name = ""): Promise<ActionResultMessage> {
    return this.request<ActionResultMessage>("action-result", (id) =>
      this.model.send(name ? { kind: action, id, turn, name } : { kind: action, id, turn }),
    );
  }

  private request<T extends ReplyMessage>(
    kind: T["kind"],
    send: (id: string) => void,
  ): Promise<T> {
    const id = requestId();
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, {
        resolve: (reply) =>
          reply.kind === kind
            ? resolve(reply as T)
            : reject(new KernelError(`unexpected reply ${reply.kind}`)),
        reject,
      });
      send(id);
    });
  }

  receive(content: unknown): void {
    if (!isKernelMessage(content)) return;
    switch (content.kind) {
      case "snapshot":
      case "nodes":
      case "reset": {
        const applied = this.store.apply(content);
        if (applied === "changed" && content.kind !== "nodes") {
          this.detailsCache.clear();
          this.epoch += 1;
        }
        if (applied === "resync" && this.store.pending === null) this.requestSnapshot();
        if (applied === "changed") for (const listener of this.listeners) listener();
        return;
      }
      case "error": {
        const waiting = this.waiting.get(content.id);
        this.waiting.delete(content.id);
        waiting?.reject(new KernelError(content.message));
        return;
      }
      default: {
        const waiting = this.waiting.get(content.id);
        this.waiting.delete(content.id);
        waiting?.resolve(content);
      }
    }
  }
}
