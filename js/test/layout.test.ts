import { describe, expect, it } from "vitest";
import { layoutRows, railsOf, type Row, type TurnRow } from "../src/layout";
import { TreeStore } from "../src/store";
import type { NodeInfo } from "../src/protocol";
import { chain, node } from "./helpers";

function storeOf(nodes: NodeInfo[]): TreeStore {
  const store = new TreeStore();
  store.expectSnapshot("s");
  store.apply({ kind: "snapshot", id: "s", seq: 0, nodes });
  return store;
}

function describeRows(rows: Row[]): string[] {
  return rows.map((row) => {
    if (row.type === "root") return `root[${row.badges.join(",")}]`;
    if (row.type === "run") return `${"  ".repeat(row.indent)}…${row.count}`;
    const marks = `${row.onPath ? "*" : ""}${row.isHead ? "H" : ""}`;
    const badges = row.badges.length ? `[${row.badges.join(",")}]` : "";
    return `${"  ".repeat(row.indent)}${row.label}${marks}${badges}`;
  });
}

describe("layoutRows", () => {
  it("shows a linear conversation as a straight column", () => {
    const store = storeOf(chain(3));
    const rows = layoutRows(store, { head: 3, branches: { main: 3 }, current: "main" });
    expect(describeRows(rows)).toEqual(["root[]", "1*", "2*", "3*H[main]"]);
  });

  it("keeps the active path straight and indents the other versions before it", () => {
    // 1 → 2 → 3.1 → 4 (main@1);  2 → 3.2 → 4 (main, head)
    const store = storeOf([node(1, null), node(2, 1), node(3, 2), node(4, 3), node(5, 2), node(6, 5)]);
    const rows = layoutRows(store, { head: 6, branches: { main: 6, "main@1": 4 }, current: "main" });
    expect(describeRows(rows)).toEqual([
      "root[]",
      "1*",
      "2*",
      "  3.1",
      "  #4[main@1]", // a row "4" would be a second "4": every label is one switch accepts
      "3.2*",
      "4*H[main]",
    ]);
  });

  it("follows the head onto another branch", () => {
    const store = storeOf([node(1, null), node(2, 1), node(3, 2), node(4, 3), node(5, 2), node(6, 5)]);
    const rows = layoutRows(store, { head: 4, branches: { main: 6, "main@1": 4 }, current: "main@1" });
    expect(describeRows(rows)).toEqual([
      "root[]",
      "1*",
      "2*",
      "3.1*", // the rows keep their order: only the indents follow the active path
      "4*H[main@1]",
      "  3.2",
      "  #6[main]",
    ]);
  });

  it("shows branches at the root and a fork at turn 1 with its badge first when current", () => {
    const store = storeOf(chain(3));
    const rows = layoutRows(store, {
      head: 1,
      branches: { main: 3, "fork-1": 1, empty: null },
      current: "fork-1",
    });
    expect(describeRows(rows)).toEqual(["root[empty]", "1*H[fork-1]", "2.1", "#3[main]"]);
    expect((rows[1] as TurnRow).forks).toBe(0);
  });

  it("folds a long linear run and unfolds it on request", () => {
    const store = storeOf(chain(1000));
    const options = { head: 1000, branches: { main: 1000 }, current: "main" };
    const rows = layoutRows(store, options);
    expect(describeRows(rows)).toEqual(["root[]", "1*", "2*", "…995", "998*", "999*", "1000*H[main]"]);
    const run = rows[3];
    expect(run?.type).toBe("run");
    const first = run?.type === "run" ? run.first : -1;
    expect(first).toBe(3);
    const open = layoutRows(store, { ...options, expanded: new Set([first]) });
    expect(open.length).toBe(1001);
    // Unfolded stays unfolded when a selection inside splits the run.
    const hidden = run?.type === "run" ? run.hidden : [];
    expect(hidden.length).toBe(995);
    const split = layoutRows(store, { ...options, expanded: new Set(hidden), pinned: new Set([3]) });
    expect(split.length).toBe(1001);
  });

  it("never folds the head, branch tips, fork points or pinned turns", () => {
    // 100 turns; a branch tip at 40, a second child under 70, the selection at 20.
    const nodes = [...chain(100), node(101, 70)];
    const store = storeOf(nodes);
    const rows = layoutRows(store, {
      head: 100,
      branches: { main: 100, keep: 40, side: 101 },
      current: "main",
      pinned: new Set([20]),
    });
    const shown = rows.filter((r): r is TurnRow => r.type === "turn").map((r) => r.id);
    for (const id of [20, 40, 70, 71, 100, 101]) expect(shown).toContain(id);
    const runs = rows.filter((r) => r.type === "run");
    expect(runs.length).toBe(4); // 1–19, 21–39, 41–69, 71–99; 101 sits one level in
    expect(describeRows(rows).filter((r) => r.startsWith("  "))).toEqual(["  71.2[side]"]);
  });

  it("lays out 10,000 turns quickly", () => {
    const store = storeOf(chain(10000));
    const started = performance.now();
    const rows = layoutRows(store, { head: 10000, branches: { main: 10000 }, current: "main" });
    expect(rows.length).toBe(7);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it("draws the graph: the spine's line passes the versions hung off it", () => {
    // 1 → 2 → 3.1 → 4 (main@1);  2 → 3.2 → 4 (main, head);  1 → 2.2 (alt)
    const store = storeOf([node(1, null), node(2, 1), node(3, 2), node(4, 3), node(5, 2), node(6, 5), node(7, 1)]);
    const rows = layoutRows(store, { head: 6, branches: { main: 6, "main@1": 4, alt: 7 }, current: "main" });
    expect(describeRows(rows)).toEqual([
      "root[]", "1*", "2.1*", "  3.1", "  #4[main@1]", "3.2*", "4*H[main]", "  2.2[alt]",
    ]);
    const drawn = railsOf(rows).map((r, i) => {
      const row = rows[i] as Row;
      const elbow = r.joins ? (r.goesOn ? "├" : "└") : "";
      return `${row.indent}:${r.through.join(",")}:${elbow}`;
    });
    expect(drawn).toEqual([
      "0::", // root
      "0::", // 1
      "0::", // 2.1
      "1:0:├", // 3.1 hangs off 2.1's column, which goes on to 3.2
      "1:0:", // #4: the column still goes on beside it
      "0::", // 3.2
      "0::", // 4
      "1::└", // 2.2 (alt) hangs off the spine, the last row below it
    ]);
  });
});
