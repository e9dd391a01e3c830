// One display of the widget: header (branch, exchanges, budget, goal), the meter, the
// virtualized tree, and the details of the selected turn. Untrusted text is only ever set
// as textContent, except the details' Markdown, which goes through markdown.ts.

import { KernelError, type Channel } from "./channel";
import { layoutRows, railsOf, type Rails, type Row } from "./layout";
import { renderMarkdown } from "./markdown";
import type { AttachmentInfo, DetailsMessage, MeterInfo, WidgetModel, WidgetState } from "./protocol";

export const ROW_HEIGHT = 24; // px; fixed so that rows never shift as the tree grows
export const MAX_VISIBLE_ROWS = 14;
const OVERSCAN = 8;
const INDENT_PX = 14;
const MAX_INDENT = 12;
const RAIL_X = 6; // px from a column's left edge to its line
const TRAITS: Array<keyof WidgetState> = [
  "name",
  "head",
  "branch",
  "branches",
  "meter",
  "goal",
  "budget",
  "exchanges",
  "cost",
];

let views = 0;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const numbers = new Intl.NumberFormat("en-US");

function plural(count: number, noun: string): string {
  return `${numbers.format(count)} ${noun}${count === 1 ? "" : "s"}`;
}

export function describeMeter(meter: MeterInfo | Record<string, never>): string {
  if (!("used" in meter)) return "tokens: not measured yet";
  const approx = meter.exact ? "" : "≈";
  const used = numbers.format(meter.used);
  if (meter.window === null || meter.fraction === null) {
    return `${approx}${used} tokens (window unknown)`;
  }
  const percent = Math.round(meter.fraction * 100);
  return `${approx}${used} of ${numbers.format(meter.window)} tokens (${percent}%)`;
}

// Glyphs the common UI fonts carry (an emoji pause sign renders as a box in some).
const STATUS_MARK: Record<string, string> = { ok: "", interrupted: "‖", error: "⚠" };

export class ConvoView {
  readonly root: HTMLElement;
  private readonly header = h("div", "nbconvo-header");
  private readonly meterBar = h("div", "nbconvo-meter-fill");
  private readonly meterText = h("span", "nbconvo-meter-text");
  private readonly meter = h("div", "nbconvo-meter");
  private readonly goal = h("div", "nbconvo-goal");
  private readonly tree = h("div", "nbconvo-tree");
  private readonly canvas = h("div", "nbconvo-canvas");
  private readonly details = h("section", "nbconvo-details");
  private acting = false; // an action of this panel is on its way to the kernel
  private readonly uid: string;

  private rows: Row[] = [];
  private rails: Rails[] = [];
  private layoutVersion = 0;
  private drawn = ""; // what the visible rows show: skip redrawing identical frames
  private dirty = true;
  private frame: number | null = null;
  private selected: string | null = null; // row key
  private readonly expanded = new Set<number>();
  private openTurn: number | null = null;
  private lastHead: number | null | undefined = undefined;
  private readonly cleanups: Array<() => void> = [];

  constructor(
    private readonly model: WidgetModel,
    private readonly channel: Channel,
    el: HTMLElement,
  ) {
    views += 1;
    this.uid = `nbconvo-${views}`;
    this.root = h("div", "nbconvo-widget");
    const bar = h("div", "nbconvo-meter-bar");
    bar.append(this.meterBar);
    this.meter.append(bar, this.meterText);
    this.tree.tabIndex = 0;
    this.tree.setAttribute("role", "tree");
    this.tree.setAttribute("aria-label", "conversation turns");
    // Arrows and Enter move in the tree, not between notebook cells (Lumino honours this).
    this.tree.dataset.lmSuppressShortcuts = "true";
    this.tree.append(this.canvas);
    this.details.hidden = true;
    this.root.append(this.header, this.meter, this.goal, this.tree, this.details);
    el.append(this.root);

    const onChange = (): void => this.invalidate();
    for (const trait of TRAITS) {
      this.model.on(`change:${trait}`, onChange);
      this.cleanups.push(() => this.model.off(`change:${trait}`, onChange));
    }
    // The kernel moved under the panel (a turn, a switch in a cell): an earlier "forked:
    // now on …" is no longer true. A change this panel's own action caused keeps it.
    const onMoved = (): void => {
      if (!this.acting) this.clearStatus();
    };
    for (const trait of ["head", "branch"] as const) {
      this.model.on(`change:${trait}`, onMoved);
      this.cleanups.push(() => this.model.off(`change:${trait}`, onMoved));
    }
    this.cleanups.push(this.channel.subscribe(onChange));
    const onScroll = (): void => this.schedule();
    this.tree.addEventListener("scroll", onScroll, { passive: true });
    this.tree.addEventListener("keydown", (event) => this.onKey(event));
    this.tree.addEventListener("click", (event) => this.onClick(event));
    this.render();
  }

  destroy(): void {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    for (const cleanup of this.cleanups) cleanup();
    this.root.remove();
  }

  /** Data changed: lay the rows out again on the next frame. */
  invalidate(): void {
    this.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  /** Render now (the next frame would do it; tests and the benchmark call this). */
  render(): void {
    if (this.dirty) {
      this.dirty = false;
      this.renderHeader();
      this.layout();
    }
    this.renderRows();
  }

  get rowCount(): number {
    return this.rows.length;
  }

  // --- header and meter ------------------------------------------------------------
  private renderHeader(): void {
    const branch = this.model.get("branch");
    const exchanges = this.model.get("exchanges");
    const budget = this.model.get("budget");
    const name = h("span", "nbconvo-name", this.model.get("name") || "conversation");
    const branchBadge = h("span", "nbconvo-badge nbconvo-current", branch);
    branchBadge.title = "current branch";
    const count = h(
      "span",
      "nbconvo-exchanges",
      budget ? `${exchanges} of ${budget} exchanges` : plural(exchanges, "exchange"),
    );
    if (budget && exchanges > budget) count.classList.add("nbconvo-over");
    const total = h("span", "nbconvo-total", `${plural(this.channel.store.nodes.size, "turn")} in the tree`);
    this.header.replaceChildren(name, branchBadge, count, total);

    const meter = this.model.get("meter");
    const cost = this.model.get("cost");
    this.meterText.textContent = describeMeter(meter) + (cost ? ` · ${cost}` : "");
    const fraction = "fraction" in meter && meter.fraction !== null ? meter.fraction : 0;
    this.meterBar.style.width = `${Math.min(1, fraction) * 100}%`;
    this.meter.dataset.state = "state" in meter ? meter.state : "unknown";

    const goal = this.model.get("goal");
    this.goal.hidden = !goal;
    this.goal.replaceChildren();
    if (goal) this.goal.append(h("strong", "", "Goal "), h("span", "", goal));
  }

  // --- tree ------------------------------------------------------------------------
  private layout(): void {
    const head = this.model.get("head");
    const pinned = new Set<number>();
    const selectedId = this.selectedTurn();
    if (selectedId !== null) pinned.add(selectedId);
    if (this.openTurn !== null) pinned.add(this.openTurn);
    this.layoutVersion += 1;
    this.rows = layoutRows(this.channel.store, {
      head,
      branches: this.model.get("branches") ?? {},
      current: this.model.get("branch"),
      expanded: this.expanded,
      pinned,
    });
    this.rails = railsOf(this.rows);
    const height = this.rows.length * ROW_HEIGHT;
    this.canvas.style.height = `${height}px`;
    this.tree.style.height = `${Math.min(this.rows.length, MAX_VISIBLE_ROWS) * ROW_HEIGHT}px`;
    if (this.selected !== null && !this.rows.some((row) => row.key === this.selected)) {
      this.selected = null;
    }
    if (this.openTurn !== null && !this.channel.store.nodes.has(this.openTurn)) {
      this.openTurn = null; // the tree was reset: that turn is gone
      this.details.hidden = true;
      this.details.replaceChildren();
    }
    if (head !== this.lastHead) {
      // Follow the head when it moves (a new turn, a switch, a fork).
      this.lastHead = head;
      const index = this.rows.findIndex((row) =>
        head === null ? row.type === "root" : row.type === "turn" && row.id === head,
      );
      if (index >= 0) this.reveal(index);
    }
  }

  private selectedTurn(): number | null {
    const key = this.selected;
    return key !== null && key.startsWith("t") ? Number(key.slice(1)) : null;
  }

  private renderRows(): void {
    const top = this.tree.scrollTop;
    const visible = Math.ceil((this.tree.clientHeight || MAX_VISIBLE_ROWS * ROW_HEIGHT) / ROW_HEIGHT);
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, first + visible + 2 * OVERSCAN);
    // Rows are rebuilt only when what they show changed, so a row under the pointer is
    // not replaced in the middle of a click.
    const drawn = `${this.layoutVersion}:${first}:${last}:${this.selected ?? ""}`;
    if (drawn === this.drawn) return;
    this.drawn = drawn;
    const nodes: HTMLElement[] = [];
    for (let i = first; i < last; i++) {
      const row = this.rows[i];
      if (row !== undefined) nodes.push(this.rowElement(row, i));
    }
    this.canvas.replaceChildren(...nodes);
    const selected = this.selected === null ? null : `${this.uid}-${this.selected}`;
    if (selected !== null) this.tree.setAttribute("aria-activedescendant", selected);
    else this.tree.removeAttribute("aria-activedescendant");
  }

  private rowElement(row: Row, index: number): HTMLElement {
    const el = h("div", "nbconvo-row");
    el.id = `${this.uid}-${row.key}`;
    el.dataset.key = row.key;
    el.dataset.index = String(index);
    el.style.top = `${index * ROW_HEIGHT}px`;
    el.setAttribute("role", "treeitem");
    if (row.key === this.selected) {
      el.classList.add("nbconvo-selected");
      el.setAttribute("aria-selected", "true");
    }
    const indent = h("span", "nbconvo-indent");
    indent.style.width = `${Math.min(row.indent, MAX_INDENT) * INDENT_PX}px`;
    const rails = this.rails[index];
    if (rails !== undefined) {
      for (const level of rails.through) {
        if (level >= MAX_INDENT) break;
        const rail = h("span", "nbconvo-rail");
        rail.style.left = `${level * INDENT_PX + RAIL_X}px`;
        indent.append(rail);
      }
      if (rails.joins && row.indent <= MAX_INDENT) {
        const elbow = h("span", rails.goesOn ? "nbconvo-elbow nbconvo-elbow-on" : "nbconvo-elbow");
        elbow.style.left = `${(row.indent - 1) * INDENT_PX + RAIL_X}px`;
        elbow.style.width = `${INDENT_PX - RAIL_X}px`;
        indent.append(elbow);
      }
    }
    el.append(indent);
    if (row.type === "root") {
      el.classList.add("nbconvo-root");
      if (row.isHead) el.classList.add("nbconvo-head");
      el.append(h("span", "nbconvo-label", "○"), h("span", "nbconvo-preview", "start"));
      el.append(this.badges(row.badges));
      return el;
    }
    if (row.type === "run") {
      el.classList.add("nbconvo-run");
      if (row.onPath) el.classList.add("nbconvo-on-path");
      el.append(
        h("span", "nbconvo-label", "⋮"),
        h("span", "nbconvo-preview", `${numbers.format(row.count)} more turns — Enter or click to show`),
      );
      return el;
    }
    const node = this.channel.store.nodes.get(row.id);
    if (node === undefined) return el;
    el.dataset.turn = String(row.id);
    el.classList.add(`nbconvo-status-${node.status}`);
    if (row.onPath) el.classList.add("nbconvo-on-path");
    if (row.isHead) el.classList.add("nbconvo-head");
    const label = h("span", "nbconvo-label", row.label);
    label.title = `turn ${row.label} (#${row.id})`;
    const mark = h("span", "nbconvo-mark", node.kind === "summary" ? "Σ" : (STATUS_MARK[node.status] ?? ""));
    mark.title = node.kind === "summary" ? "summary" : node.status;
    const preview = h("span", "nbconvo-preview", node.preview);
    const approx = node.exact ? "" : "≈";
    const tokens = h(
      "span",
      "nbconvo-tokens",
      `${approx}${numbers.format(node.tokens_in)} → ${numbers.format(node.tokens_out)}`,
    );
    tokens.title = "tokens in → out";
    el.append(label, mark, preview, this.badges(row.badges), tokens);
    if (row.forks > 0) el.classList.add("nbconvo-fork-point");
    return el;
  }

  private badges(names: readonly string[]): HTMLElement {
    const box = h("span", "nbconvo-badges");
    const current = this.model.get("branch");
    for (const name of names) {
      box.append(h("span", name === current ? "nbconvo-badge nbconvo-current" : "nbconvo-badge", name));
    }
    return box;
  }

  private reveal(index: number): void {
    const top = index * ROW_HEIGHT;
    const height = this.tree.clientHeight || Math.min(this.rows.length, MAX_VISIBLE_ROWS) * ROW_HEIGHT;
    if (top < this.tree.scrollTop) this.tree.scrollTop = top;
    else if (top + ROW_HEIGHT > this.tree.scrollTop + height) {
      this.tree.scrollTop = top + ROW_HEIGHT - height;
    }
  }

  // --- interaction -----------------------------------------------------------------
  private select(index: number): void {
    const row = this.rows[Math.max(0, Math.min(this.rows.length - 1, index))];
    if (row === undefined) return;
    this.selected = row.key;
    this.reveal(this.rows.indexOf(row));
    this.render();
  }

  private activate(index: number): void {
    const row = this.rows[index];
    if (row === undefined) return;
    this.selected = row.key;
    if (row.type === "run") {
      for (const id of row.hidden) this.expanded.add(id);
      this.selected = `t${row.first}`;
      this.invalidate();
      this.render();
    } else if (row.type === "turn") {
      this.openDetails(row.id);
      this.render();
    }
  }

  private onClick(event: MouseEvent): void {
    const target = (event.target as Element | null)?.closest<HTMLElement>(".nbconvo-row");
    if (!target || target.dataset.index === undefined) return;
    this.tree.focus({ preventScroll: true });
    this.activate(Number(target.dataset.index));
  }

  private onKey(event: KeyboardEvent): void {
    const index = this.rows.findIndex((row) => row.key === this.selected);
    const page = MAX_VISIBLE_ROWS - 1;
    const moves: Record<string, () => void> = {
      ArrowDown: () => this.select(index < 0 ? 0 : index + 1),
      ArrowUp: () => this.select(index < 0 ? this.rows.length - 1 : index - 1),
      PageDown: () => this.select(index + page),
      PageUp: () => this.select(index - page),
      Home: () => this.select(0),
      End: () => this.select(this.rows.length - 1),
      ArrowLeft: () => this.select(this.parentIndex(index)),
      ArrowRight: () => this.select(this.childIndex(index)),
      Enter: () => this.activate(index),
      " ": () => this.activate(index),
      Escape: () => this.closeDetails(),
    };
    const move = moves[event.key];
    if (move === undefined) return;
    event.preventDefault();
    move();
  }

  private parentIndex(index: number): number {
    const row = this.rows[index];
    if (row?.type !== "turn") return index - 1;
    const parent = this.channel.store.nodes.get(row.id)?.parent ?? null;
    const found = this.rows.findIndex((r) =>
      parent === null ? r.type === "root" : r.type === "turn" && r.id === parent,
    );
    return found >= 0 ? found : index - 1;
  }

  private childIndex(index: number): number {
    const row = this.rows[index];
    if (row?.type !== "turn") return index + 1;
    const children = new Set(this.channel.store.nodes.get(row.id)?.children ?? []);
    const found = this.rows.findIndex((r) => r.type === "turn" && children.has(r.id));
    return found >= 0 ? found : index;
  }

  // --- details ---------------------------------------------------------------------
  private closeDetails(): void {
    this.openTurn = null;
    this.details.hidden = true;
    this.details.replaceChildren();
    this.tree.focus({ preventScroll: true });
  }

  private openDetails(turn: number): void {
    this.openTurn = turn;
    this.details.hidden = false;
    const cached = this.channel.cachedDetails(turn);
    if (cached !== undefined) {
      this.fillDetails(cached);
      return;
    }
    const store = this.channel.store;
    const label = store.treeLabel(turn, store.pathTo(this.model.get("head") ?? null));
    this.details.replaceChildren(h("div", "nbconvo-details-title", `Turn ${label}`), h("div", "nbconvo-note", "loading…"));
    this.channel.details(turn).then(
      (message) => {
        if (this.openTurn === turn) this.fillDetails(message);
      },
      (error: unknown) => {
        if (this.openTurn === turn) this.showStatus(errorText(error), true);
      },
    );
  }

  private fillDetails(message: DetailsMessage): void {
    const title = h("div", "nbconvo-details-title");
    title.append(
      h("strong", "", `Turn ${message.label}`),
      h("span", "nbconvo-note", ` #${message.turn} · ${message.status}${message.model ? ` · ${message.model}` : ""}`),
    );
    const switchButton = h("button", "nbconvo-button", "Switch here");
    switchButton.title = "make this turn the head (of its branch, or of a new branch at-<id>)";
    const forkButton = h("button", "nbconvo-button", "Fork here");
    forkButton.title = "start a new branch at this turn and switch to it";
    const forkName = document.createElement("input");
    forkName.className = "nbconvo-fork-name";
    forkName.type = "text";
    forkName.placeholder = "new branch name";
    forkName.setAttribute("aria-label", "name of the new branch (optional)");
    forkName.maxLength = 64;
    // Keys typed here are the field's: not the tree's, nor the notebook's shortcuts.
    forkName.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter") forkButton.click();
    });
    const close = h("button", "nbconvo-button nbconvo-close", "×");
    close.title = "close (Escape)";
    close.setAttribute("aria-label", "close details");
    for (const button of [switchButton, forkButton, close]) button.type = "button";
    const actions = h("div", "nbconvo-actions");
    actions.append(switchButton, forkName, forkButton, close);
    const bar = h("div", "nbconvo-details-bar");
    bar.append(title, actions);
    const status = h("div", "nbconvo-status-line");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    const body = h("div", "nbconvo-details-body");
    const prompt = h("div", "nbconvo-markdown nbconvo-prompt");
    prompt.append(renderMarkdown(message.prompt));
    const answer = h("div", "nbconvo-markdown nbconvo-answer");
    answer.append(renderMarkdown(message.answer || "*(no answer)*"));
    body.append(h("div", "nbconvo-section", "Prompt"), prompt);
    const attachments = message.attachments ?? [];
    if (attachments.length > 0) {
      body.append(h("div", "nbconvo-section", "Sent with it"), attachmentList(attachments));
    }
    body.append(h("div", "nbconvo-section", "Answer"), answer);
    if (message.error) body.append(h("div", "nbconvo-error-text", message.error));
    this.details.replaceChildren(bar, status, body);

    const act = (action: "switch" | "fork"): void => {
      switchButton.disabled = forkButton.disabled = true;
      this.acting = true;
      this.showStatus(action === "switch" ? "switching…" : "forking…", false);
      this.channel.act(action, message.turn, action === "fork" ? forkName.value.trim() : "").then(
        (result) => {
          const verb = result.action === "switch" ? "switched to" : "forked: now on";
          this.showStatus(`${verb} branch ${result.branch}`, false);
        },
        (error: unknown) => this.showStatus(errorText(error), true),
      ).finally(() => {
        switchButton.disabled = forkButton.disabled = false;
        this.acting = false;
      });
    };
    switchButton.addEventListener("click", () => act("switch"));
    forkButton.addEventListener("click", () => act("fork"));
    close.addEventListener("click", () => this.closeDetails());
  }

  private clearStatus(): void {
    const line = this.details.querySelector<HTMLElement>(".nbconvo-status-line");
    if (line !== null) {
      line.textContent = "";
      line.classList.remove("nbconvo-error-text");
    }
  }

  private showStatus(text: string, isError: boolean): void {
    let line = this.details.querySelector<HTMLElement>(".nbconvo-status-line");
    if (line === null) {
      line = h("div", "nbconvo-status-line");
      this.details.append(line);
    }
    line.textContent = text;
    line.classList.toggle("nbconvo-error-text", isError);
  }
}

// A prompt's notebook values (each a collapsed table) and images (thumbnails the kernel
// drew: only a PNG data URL is ever set as a source, so nothing is fetched).
const THUMBNAIL = /^data:image\/png;base64,[A-Za-z0-9+/]+={0,2}$/;

function attachmentList(attachments: AttachmentInfo[]): HTMLElement {
  const list = h("div", "nbconvo-attachments");
  const imagesFirst = [...attachments].sort((a, b) => Number(a.kind !== "image") - Number(b.kind !== "image"));
  for (const item of imagesFirst) {
    const label = `${item.name}: ${item.summary}`;
    if (item.kind === "image") {
      const figure = h("figure", "nbconvo-thumbnail");
      if (THUMBNAIL.test(item.thumbnail)) {
        const image = document.createElement("img");
        image.src = item.thumbnail;
        image.alt = label;
        figure.append(image);
      }
      figure.append(h("figcaption", "nbconvo-note", label));
      list.append(figure);
    } else if (item.kind === "document") {
      list.append(h("div", "nbconvo-note nbconvo-document", `📄 ${label}`));
    } else {
      const details = document.createElement("details");
      details.className = "nbconvo-value";
      details.append(h("summary", "", label));
      const table = h("div", "nbconvo-markdown");
      table.append(renderMarkdown(item.markdown));
      details.append(table);
      list.append(details);
    }
  }
  return list;
}

function errorText(error: unknown): string {
  if (error instanceof KernelError) return error.message;
  return error instanceof Error ? `error: ${error.message}` : String(error);
}
