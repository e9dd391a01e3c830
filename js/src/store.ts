// The turn tree as this front end knows it: a snapshot, then deltas in `seq` order.

import type { NodeInfo, TreeMessage } from "./protocol";

export interface TreeNode extends NodeInfo {
  depth: number; // 1-based position from the root
  index: number; // among its parent's children, in creation order
  children: number[];
}

/** What applying a message did: the view re-renders on "changed"; "resync" means the
 * store saw a gap and needs a new snapshot. */
export type Applied = "changed" | "ignored" | "resync";

export class TreeStore {
  readonly nodes = new Map<number, TreeNode>();
  readonly roots: number[] = [];
  /** `seq` of the last message applied; -1 before the first snapshot. */
  seq = -1;
  /** The snapshot request in flight, if any; deltas wait in `buffered` meanwhile. */
  pending: string | null = null;
  private buffered: TreeMessage[] = [];

  get synced(): boolean {
    return this.seq >= 0 && this.pending === null;
  }

  /** Mark a snapshot as requested under `id`; the caller sends the request. */
  expectSnapshot(id: string): void {
    this.pending = id;
  }

  apply(message: TreeMessage): Applied {
    if (message.kind === "snapshot") {
      if (message.id !== this.pending) return "ignored"; // another view's request
      this.clear();
      this.pending = null;
      this.seq = message.seq;
      if (!this.insert(message.nodes)) return "resync";
      const waiting = this.buffered.filter((m) => m.seq > message.seq);
      this.buffered = [];
      for (const next of waiting.sort((a, b) => a.seq - b.seq)) {
        if (this.step(next) === "resync") return "resync";
      }
      return "changed";
    }
    if (this.pending !== null || this.seq < 0) {
      this.buffered.push(message);
      return this.pending !== null ? "ignored" : "resync";
    }
    return this.step(message);
  }

  private step(message: TreeMessage): Applied {
    if (message.seq <= this.seq) return "ignored"; // already in the snapshot
    if (message.seq !== this.seq + 1) {
      this.buffered.push(message);
      return "resync";
    }
    this.seq = message.seq;
    if (message.kind === "reset") {
      this.clear();
      return "changed";
    }
    if (message.kind === "nodes") {
      return this.insert(message.nodes) ? "changed" : "resync";
    }
    return "ignored";
  }

  private clear(): void {
    this.nodes.clear();
    this.roots.length = 0;
  }

  /** Add nodes (parents before children); false when a parent is unknown. */
  private insert(nodes: readonly NodeInfo[]): boolean {
    for (const info of nodes) {
      if (this.nodes.has(info.id)) continue;
      const parent = info.parent === null ? null : this.nodes.get(info.parent);
      if (parent === undefined) return false;
      const siblings = parent === null ? this.roots : parent.children;
      this.nodes.set(info.id, {
        ...info,
        depth: parent === null ? 1 : parent.depth + 1,
        index: siblings.length,
        children: [],
      });
      siblings.push(info.id);
    }
    return true;
  }

  siblings(id: number): readonly number[] {
    const node = this.nodes.get(id);
    if (node === undefined) return [];
    return node.parent === null ? this.roots : (this.nodes.get(node.parent)?.children ?? []);
  }

  /** "3" for the only version of position 3, "3.2" for its second (as `tree.label`). */
  label(id: number): string {
    const node = this.nodes.get(id);
    if (node === undefined) return `#${id}`;
    return this.siblings(id).length > 1 ? `${node.depth}.${node.index + 1}` : `${node.depth}`;
  }

  /**
   * The label a row shows: unique in the tree and one `%convo switch` accepts (as
   * `tree_label`). On the active path "3" or "3.2"; a turn whose parent is on it "3.2";
   * any other "#7".
   */
  treeLabel(id: number, onPath: ReadonlySet<number>): string {
    const node = this.nodes.get(id);
    if (node === undefined) return `#${id}`;
    if (onPath.has(id)) return this.label(id);
    if (node.parent === null || onPath.has(node.parent)) return `${node.depth}.${node.index + 1}`;
    return `#${id}`;
  }

  /** Ids from `head` up to the root. */
  pathTo(head: number | null): Set<number> {
    const path = new Set<number>();
    let at = head === null ? undefined : this.nodes.get(head);
    while (at !== undefined && !path.has(at.id)) {
      path.add(at.id);
      at = at.parent === null ? undefined : this.nodes.get(at.parent);
    }
    return path;
  }
}
