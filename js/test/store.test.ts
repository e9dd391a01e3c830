import { describe, expect, it } from "vitest";
import { TreeStore } from "../src/store";
import { chain, node } from "./helpers";

function synced(nodes = chain(3), seq = 5): TreeStore {
  const store = new TreeStore();
  store.expectSnapshot("a");
  expect(store.apply({ kind: "snapshot", id: "a", seq, nodes })).toBe("changed");
  return store;
}

describe("TreeStore", () => {
  it("applies a snapshot with depths, versions and labels", () => {
    const store = synced([node(1, null), node(2, 1), node(3, 2), node(4, 2), node(5, 4)]);
    expect(store.synced).toBe(true);
    expect(store.nodes.get(5)?.depth).toBe(4);
    expect(store.label(1)).toBe("1");
    expect(store.label(3)).toBe("3.1");
    expect(store.label(4)).toBe("3.2");
    expect(store.label(5)).toBe("4");
    expect([...store.pathTo(5)].sort()).toEqual([1, 2, 4, 5]);
  });

  it("applies deltas in order and relabels siblings", () => {
    const store = synced(chain(3), 5);
    expect(store.apply({ kind: "nodes", seq: 6, nodes: [node(4, 3)] })).toBe("changed");
    expect(store.label(4)).toBe("4");
    expect(store.apply({ kind: "nodes", seq: 7, nodes: [node(5, 3)] })).toBe("changed");
    expect(store.label(4)).toBe("4.1");
    expect(store.label(5)).toBe("4.2");
    expect(store.seq).toBe(7);
  });

  it("ignores duplicates and snapshots that answer another view", () => {
    const store = synced(chain(3), 5);
    expect(store.apply({ kind: "nodes", seq: 5, nodes: [node(9, 3)] })).toBe("ignored");
    expect(store.nodes.has(9)).toBe(false);
    expect(store.apply({ kind: "snapshot", id: "other", seq: 9, nodes: [] })).toBe("ignored");
    expect(store.nodes.size).toBe(3);
  });

  it("asks for a resync on a gap, then catches up from the new snapshot", () => {
    const store = synced(chain(3), 5);
    expect(store.apply({ kind: "nodes", seq: 7, nodes: [node(5, 4)] })).toBe("resync");
    store.expectSnapshot("b");
    // A delta that arrives while the snapshot is on its way waits for it.
    expect(store.apply({ kind: "nodes", seq: 8, nodes: [node(6, 5)] })).toBe("ignored");
    const nodes = [...chain(3), node(4, 3), node(5, 4)];
    expect(store.apply({ kind: "snapshot", id: "b", seq: 7, nodes })).toBe("changed");
    expect(store.seq).toBe(8);
    expect(store.nodes.has(6)).toBe(true);
    expect(store.label(6)).toBe("6");
  });

  it("buffers deltas that arrive before the first snapshot", () => {
    const store = new TreeStore();
    store.expectSnapshot("a");
    expect(store.apply({ kind: "nodes", seq: 3, nodes: [node(3, 2)] })).toBe("ignored");
    expect(store.apply({ kind: "nodes", seq: 2, nodes: [node(2, 1)] })).toBe("ignored");
    expect(store.apply({ kind: "snapshot", id: "a", seq: 1, nodes: [node(1, null)] })).toBe("changed");
    expect([...store.nodes.keys()]).toEqual([1, 2, 3]);
    expect(store.seq).toBe(3);
  });

  it("a delta whose parent is unknown triggers a resync", () => {
    const store = synced(chain(2), 1);
    expect(store.apply({ kind: "nodes", seq: 2, nodes: [node(8, 7)] })).toBe("resync");
  });

  it("reset empties the tree", () => {
    const store = synced(chain(3), 5);
    expect(store.apply({ kind: "reset", seq: 6 })).toBe("changed");
    expect(store.nodes.size).toBe(0);
    expect(store.roots).toEqual([]);
    expect(store.apply({ kind: "nodes", seq: 7, nodes: [node(1, null)] })).toBe("changed");
    expect(store.label(1)).toBe("1");
  });

  it("applies a delta in time independent of the tree's size", () => {
    const store = synced(chain(5000), 1);
    const started = performance.now();
    for (let i = 0; i < 1000; i++) {
      store.apply({ kind: "nodes", seq: 2 + i, nodes: [node(5001 + i, 5000 + i)] });
    }
    expect(store.nodes.size).toBe(6000);
    expect(performance.now() - started).toBeLessThan(200);
  });
});
