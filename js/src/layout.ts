// The tree as a list of rows. The active path is the straight spine: at every node the
// child on the active path (else the newest) continues at the same indent and its other
// children, one level in; children keep the order they were made in, so rows keep their
// places when the active branch changes. Each row says which columns a line passes
// through (the graph the view draws, as `git log --graph`). Long linear runs fold into
// one "n turns" row so a 1,000-turn conversation stays readable; the view virtualizes
// whatever remains.

import type { TreeStore } from "./store";

export interface RootRow {
  type: "root";
  key: string;
  indent: 0;
  badges: string[];
  isHead: boolean;
}

export interface TurnRow {
  type: "turn";
  key: string;
  id: number;
  indent: number;
  label: string;
  onPath: boolean;
  isHead: boolean;
  badges: string[];
  forks: number; // children beyond the first: > 0 marks a branch point
}

export interface RunRow {
  type: "run";
  key: string;
  first: number; // id of the first folded turn
  hidden: number[]; // the folded turns: the view remembers them when the user unfolds
  count: number;
  indent: number;
  onPath: boolean;
}

export type Row = RootRow | TurnRow | RunRow;

/** The graph beside a row: the columns a line passes through, and whether the row hangs
 * off the column to its left (the first row of a branch drawn one level in). */
export interface Rails {
  through: number[]; // levels below the row's own whose line goes on below it
  joins: boolean; // a line from level indent - 1 turns into this row
  goesOn: boolean; // ... and that column goes on below it (├ rather than └)
}

/** The rails of each row, in one pass from the bottom (O(rows × depth of indent)). */
export function railsOf(rows: readonly Row[]): Rails[] {
  const out: Rails[] = new Array(rows.length);
  const continues: boolean[] = []; // level → a row further down sits in that column
  for (let i = rows.length - 1; i >= 0; i--) {
    const indent = (rows[i] as Row).indent;
    const above = i > 0 ? (rows[i - 1] as Row).indent : 0;
    const through: number[] = [];
    for (let level = 0; level < indent; level++) if (continues[level]) through.push(level);
    const joins = indent > above;
    out[i] = { through, joins, goesOn: joins && continues[indent - 1] === true };
    continues[indent] = true;
    continues.length = indent + 1; // deeper columns end at this row
  }
  return out;
}

export interface LayoutOptions {
  head: number | null;
  branches: Readonly<Record<string, number | null>>;
  current: string;
  expanded?: ReadonlySet<number>; // runs unfolded by the user: a run holding one stays open
  pinned?: ReadonlySet<number>; // never folded (the selection)
  foldAt?: number; // runs this long or longer fold
  keep?: number; // rows kept at each end of a folded run
}

export const FOLD_AT = 12;
export const KEEP = 2;

function badgesByTip(
  branches: Readonly<Record<string, number | null>>,
  current: string,
): Map<number | null, string[]> {
  const tips = new Map<number | null, string[]>();
  for (const [name, tip] of Object.entries(branches)) {
    const list = tips.get(tip) ?? [];
    list.push(name);
    tips.set(tip, list);
  }
  for (const list of tips.values()) {
    list.sort((a, b) => (a === current ? -1 : b === current ? 1 : a.localeCompare(b)));
  }
  return tips;
}

export function layoutRows(store: TreeStore, options: LayoutOptions): Row[] {
  const { head, branches, current } = options;
  const expanded = options.expanded ?? new Set<number>();
  const pinned = options.pinned ?? new Set<number>();
  const foldAt = options.foldAt ?? FOLD_AT;
  const keep = options.keep ?? KEEP;
  const onPath = store.pathTo(head);
  const tips = badgesByTip(branches, current);

  const rows: Row[] = [
    { type: "root", key: "root", indent: 0, badges: tips.get(null) ?? [], isHead: head === null },
  ];
  const turns: TurnRow[] = [];
  // Depth-first, iterative (a linear run may be thousands deep).
  const stack: Array<[number, number]> = [];
  // Children in the order they were made, so a row keeps its place when the active
  // branch changes (only indents change): the one on the active path (else the newest)
  // continues its parent's column, the others are indented.
  const pushChildren = (children: readonly number[], indent: number): void => {
    if (children.length === 0) return;
    let primary = children.length - 1;
    for (let i = 0; i < children.length; i++) {
      if (onPath.has(children[i] as number)) primary = i;
    }
    for (let i = children.length - 1; i >= 0; i--) {
      stack.push([children[i] as number, i === primary ? indent : indent + 1]);
    }
  };
  pushChildren(store.roots, 0);
  while (stack.length > 0) {
    const [id, indent] = stack.pop() as [number, number];
    const node = store.nodes.get(id);
    if (node === undefined) continue;
    turns.push({
      type: "turn",
      key: `t${id}`,
      id,
      indent,
      label: store.treeLabel(id, onPath),
      onPath: onPath.has(id),
      isHead: id === head,
      badges: tips.get(id) ?? [],
      forks: Math.max(0, node.children.length - 1),
    });
    pushChildren(node.children, indent);
  }

  // Fold runs: consecutive rows, each the only child of the one before, at one indent,
  // none of them a branch tip, the head, pinned or a branch point.
  const foldable = (row: TurnRow): boolean =>
    row.badges.length === 0 && !row.isHead && row.forks === 0 && !pinned.has(row.id);
  let i = 0;
  while (i < turns.length) {
    const start = turns[i] as TurnRow;
    if (!foldable(start)) {
      rows.push(start);
      i += 1;
      continue;
    }
    let end = i + 1; // exclusive
    while (end < turns.length) {
      const next = turns[end] as TurnRow;
      const previous = turns[end - 1] as TurnRow;
      if (!foldable(next) || next.indent !== previous.indent) break;
      if (store.nodes.get(next.id)?.parent !== previous.id) break;
      end += 1;
    }
    const length = end - i;
    const first = turns[i + keep];
    let open = false; // unfolded by the user: any of its hidden turns was a run's first
    for (let k = i + keep; k < end - keep && !open; k++) open = expanded.has((turns[k] as TurnRow).id);
    if (length >= foldAt && first !== undefined && !open) {
      for (let k = i; k < i + keep; k++) rows.push(turns[k] as TurnRow);
      const hidden = turns.slice(i + keep, end - keep).map((row) => row.id);
      rows.push({
        type: "run",
        key: `r${first.id}`,
        first: first.id,
        hidden,
        count: hidden.length,
        indent: start.indent,
        onPath: first.onPath,
      });
      for (let k = end - keep; k < end; k++) rows.push(turns[k] as TurnRow);
    } else {
      for (let k = i; k < end; k++) rows.push(turns[k] as TurnRow);
    }
    i = end;
  }
  return rows;
}
