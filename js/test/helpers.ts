import type { NodeInfo, ViewMessage, WidgetModel, WidgetState } from "../src/protocol";

export function node(id: number, parent: number | null, preview = `turn ${id}`): NodeInfo {
  return {
    id,
    parent,
    kind: "turn",
    status: "ok",
    preview,
    tokens_in: 10,
    tokens_out: 20,
    exact: true,
  };
}

/** A linear chain 1 → 2 → … → n. */
export function chain(n: number, start = 1, parent: number | null = null): NodeInfo[] {
  const out: NodeInfo[] = [];
  for (let id = start; id < start + n; id++) {
    out.push(node(id, id === start ? parent : id - 1));
  }
  return out;
}

type Callback = (...args: never[]) => void;

/** Enough of anywidget's model: traits, events, and the messages the view sent. */
export class FakeModel implements WidgetModel {
  sent: ViewMessage[] = [];
  private handlers = new Map<string, Set<Callback>>();
  constructor(public state: WidgetState) {}

  get<K extends keyof WidgetState>(key: K): WidgetState[K] {
    return this.state[key];
  }
  on(event: string, callback: Callback): void {
    const set = this.handlers.get(event) ?? new Set<Callback>();
    set.add(callback);
    this.handlers.set(event, set);
  }
  off(event: string, callback: Callback): void {
    this.handlers.get(event)?.delete(callback);
  }
  send(content: ViewMessage): void {
    this.sent.push(content);
  }
  set<K extends keyof WidgetState>(key: K, value: WidgetState[K]): void {
    this.state[key] = value;
    for (const callback of this.handlers.get(`change:${key}`) ?? []) (callback as () => void)();
  }
  deliver(content: unknown): void {
    for (const callback of this.handlers.get("msg:custom") ?? []) {
      (callback as (content: unknown) => void)(content);
    }
  }
  listenerCount(event: string): number {
    return this.handlers.get(event)?.size ?? 0;
  }
}

export function state(overrides: Partial<WidgetState> = {}): WidgetState {
  return {
    name: "default",
    head: null,
    branch: "main",
    branches: { main: null },
    meter: { used: 1234, window: 128000, exact: false, fraction: 1234 / 128000, state: "ok" },
    goal: null,
    budget: null,
    exchanges: 0,
    cost: "",
    ...overrides,
  };
}
