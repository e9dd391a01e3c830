import { afterEach, describe, expect, it } from "vitest";
import { mount } from "../src/widget";
import type { DetailsMessage } from "../src/protocol";
import { chain, FakeModel, node, state } from "./helpers";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  document.body.replaceChildren();
});

function setup(n = 3) {
  const model = new FakeModel(state({ head: n, branches: { main: n }, exchanges: n }));
  const el = document.createElement("div");
  document.body.append(el);
  const { view, cleanup } = mount(model, el);
  cleanups.push(cleanup);
  const request = model.sent[0];
  expect(request?.kind).toBe("snapshot-request");
  model.deliver({ kind: "snapshot", id: request?.id, seq: 1, nodes: chain(n) });
  view.render();
  return { model, el, view };
}

function rowTexts(el: HTMLElement): string[] {
  return Array.from(el.querySelectorAll(".nbconvo-row .nbconvo-label")).map((e) => e.textContent ?? "");
}

describe("ConvoView", () => {
  it("asks for a snapshot and shows the nodes, branch and meter", () => {
    const { el } = setup(3);
    expect(rowTexts(el)).toEqual(["○", "1", "2", "3"]);
    expect(el.querySelector(".nbconvo-head .nbconvo-label")?.textContent).toBe("3");
    expect(el.querySelector(".nbconvo-row .nbconvo-current")?.textContent).toBe("main");
    expect(el.querySelector(".nbconvo-meter-text")?.textContent).toBe("≈1,234 of 128,000 tokens (1%)");
  });

  it("shows what the branch and the tree cost beside the meter, as text", () => {
    const { model, el, view } = setup(2);
    model.set("cost", "branch $0.012 · tree <b>$0.030</b>");
    view.render();
    const text = el.querySelector(".nbconvo-meter-text");
    expect(text?.textContent).toBe("≈1,234 of 128,000 tokens (1%) · branch $0.012 · tree <b>$0.030</b>");
    expect(text?.querySelector("b")).toBeNull();
  });

  it("applies a delta and follows the new head", () => {
    const { model, el, view } = setup(3);
    model.deliver({ kind: "nodes", seq: 2, nodes: [node(4, 3, "<img src=x onerror=alert(1)>")] });
    model.set("head", 4);
    model.set("branches", { main: 4 });
    view.render();
    expect(rowTexts(el)).toEqual(["○", "1", "2", "3", "4"]);
    const preview = el.querySelectorAll(".nbconvo-preview")[4];
    expect(preview?.textContent).toBe("<img src=x onerror=alert(1)>");
    expect(el.querySelector("img")).toBeNull();
  });

  it("shares one snapshot between displays of a model", () => {
    const { model } = setup(3);
    const other = document.createElement("div");
    document.body.append(other);
    const { view, cleanup } = mount(model, other);
    cleanups.push(cleanup);
    view.render();
    expect(model.sent.filter((m) => m.kind === "snapshot-request").length).toBe(1);
    expect(rowTexts(other)).toEqual(["○", "1", "2", "3"]);
  });

  it("renders only the visible rows of a 1,000-turn tree", () => {
    const { el, view } = setup(1000);
    expect(el.querySelectorAll(".nbconvo-row").length).toBeLessThan(40);
    expect(view.rowCount).toBe(7); // the long run is folded
  });

  it("moves with the arrow keys, opens details with Enter and sends fork here", async () => {
    const { model, el, view } = setup(3);
    const tree = el.querySelector(".nbconvo-tree") as HTMLElement;
    const key = (k: string) => tree.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
    key("Home");
    key("ArrowDown");
    expect(el.querySelector(".nbconvo-selected .nbconvo-label")?.textContent).toBe("1");
    key("Enter");
    const request = model.sent.at(-1);
    expect(request).toMatchObject({ kind: "details-request", turn: 1 });
    const details: DetailsMessage = {
      kind: "details",
      id: request?.id ?? "",
      turn: 1,
      label: "1",
      prompt: "**hello**",
      answer: "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=1\"> fine",
      model: "openai:fake",
      status: "ok",
      error: null,
    };
    model.deliver(details);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(el.querySelector(".nbconvo-prompt strong")?.textContent).toBe("hello");
    expect(el.querySelector(".nbconvo-answer script")).toBeNull();
    expect(el.querySelector(".nbconvo-answer img")).toBeNull();
    expect(el.querySelector(".nbconvo-answer")?.textContent).toContain("<img src=x onerror=\"window.__xss=1\"> fine");
    const fork = Array.from(el.querySelectorAll("button")).find((b) => b.textContent === "Fork here");
    fork?.click();
    const action = model.sent.at(-1);
    expect(action).toMatchObject({ kind: "fork", turn: 1 });
    model.deliver({ kind: "error", id: action?.id, message: "branch exists already" });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(el.querySelector(".nbconvo-status-line")?.textContent).toBe("branch exists already");
    key("Escape");
    expect((el.querySelector(".nbconvo-details") as HTMLElement).hidden).toBe(true);
    view.render();
  });

  it("shows what a prompt was sent with: values collapsed, images as the kernel's thumbnails only", async () => {
    const { model, el } = setup(2);
    el.querySelector<HTMLElement>(".nbconvo-row[data-turn='2']")?.click();
    const request = model.sent.at(-1);
    const png = "data:image/png;base64,iVBORw0KGgo=";
    model.deliver({
      kind: "details", id: request?.id, turn: 2, label: "2", prompt: "Compare {df} with the chart",
      answer: "ok", model: "openai:fake", status: "ok", error: null,
      attachments: [
        { kind: "data", name: "df", summary: "pandas DataFrame, 1,000 × 2", markdown: "| a | b |\n|---|---|\n| 1 | <img src=x onerror=alert(1)> |", thumbnail: "" },
        { kind: "image", name: "fig", summary: "image 640 × 480 px", markdown: "", thumbnail: png },
        { kind: "image", name: "<b>x</b>", summary: "image 1 × 1 px", markdown: "", thumbnail: "https://example.org/track.png" },
      ],
    });
    await new Promise((resolve) => setTimeout(resolve, 0));
    const value = el.querySelector("details.nbconvo-value");
    expect(value?.querySelector("summary")?.textContent).toBe("df: pandas DataFrame, 1,000 × 2");
    expect(value?.querySelector("table td")?.textContent).toBe("1");
    expect(value?.querySelector("img")).toBeNull();
    const images = Array.from(el.querySelectorAll<HTMLImageElement>(".nbconvo-thumbnail img"));
    expect(images.map((i) => i.getAttribute("src"))).toEqual([png]); // the remote one is never set
    const captions = Array.from(el.querySelectorAll(".nbconvo-thumbnail figcaption")).map((c) => c.textContent);
    expect(captions).toEqual(["fig: image 640 × 480 px", "<b>x</b>: image 1 × 1 px"]);
    expect(el.querySelector(".nbconvo-thumbnail b")).toBeNull();
  });

  it("forks under the name typed, and clears the status when the kernel moves on", async () => {
    const { model, el } = setup(3);
    el.querySelector<HTMLElement>(".nbconvo-row[data-turn='1']")?.click();
    const request = model.sent.at(-1);
    model.deliver({ kind: "details", id: request?.id, turn: 1, label: "1", prompt: "p", answer: "a", model: "", status: "ok", error: null });
    await new Promise((resolve) => setTimeout(resolve, 0));
    const name = el.querySelector<HTMLInputElement>(".nbconvo-fork-name");
    expect(name).not.toBeNull();
    (name as HTMLInputElement).value = " pricing ";
    name?.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    const action = model.sent.at(-1);
    expect(action).toMatchObject({ kind: "fork", turn: 1, name: "pricing" });
    model.set("head", 1); // the kernel's own sync of this action: the status stays
    model.set("branch", "pricing");
    model.deliver({ kind: "action-result", id: action?.id, action: "fork", branch: "pricing", head: 1 });
    await new Promise((resolve) => setTimeout(resolve, 0));
    const status = el.querySelector(".nbconvo-status-line");
    expect(status?.textContent).toBe("forked: now on branch pricing");
    model.set("head", 4); // a turn from a cell: "forked: now on …" is no longer the news
    expect(status?.textContent).toBe("");
  });

  it("forks with no name as fork-N (the message carries none)", async () => {
    const { model, el } = setup(2);
    el.querySelector<HTMLElement>(".nbconvo-row[data-turn='2']")?.click();
    const request = model.sent.at(-1);
    model.deliver({ kind: "details", id: request?.id, turn: 2, label: "2", prompt: "p", answer: "a", model: "", status: "ok", error: null });
    await new Promise((resolve) => setTimeout(resolve, 0));
    Array.from(el.querySelectorAll("button")).find((b) => b.textContent === "Fork here")?.click();
    const action = model.sent.at(-1);
    expect(action).toMatchObject({ kind: "fork", turn: 2 });
    expect(action && "name" in action).toBe(false);
  });

  it("expands a folded run with Enter", () => {
    const { el, view } = setup(100);
    const tree = el.querySelector(".nbconvo-tree") as HTMLElement;
    const key = (k: string) => tree.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
    key("Home");
    for (let i = 0; i < 3; i++) key("ArrowDown");
    expect(el.querySelector(".nbconvo-selected")?.classList.contains("nbconvo-run")).toBe(true);
    key("Enter");
    expect(view.rowCount).toBe(101);
  });

  it("removes its listeners when the last display goes", () => {
    const model = new FakeModel(state());
    const el = document.createElement("div");
    const { cleanup } = mount(model, el);
    expect(model.listenerCount("msg:custom")).toBe(1);
    cleanup();
    expect(model.listenerCount("msg:custom")).toBe(0);
    expect(model.listenerCount("change:head")).toBe(0);
  });
});

describe("details after a reset", () => {
  it("forgets cached details and closes the panel when the tree is reset", async () => {
    const { model, el, view } = setup(2);
    const row = el.querySelector<HTMLElement>(".nbconvo-row[data-turn='1']");
    row?.click();
    const first = model.sent.at(-1);
    expect(first).toMatchObject({ kind: "details-request", turn: 1 });
    model.deliver({ kind: "details", id: first?.id, turn: 1, label: "1", prompt: "old", answer: "old answer", model: "", status: "ok", error: null });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(el.querySelector(".nbconvo-answer")?.textContent).toContain("old answer");

    model.deliver({ kind: "reset", seq: 2 });
    model.deliver({ kind: "nodes", seq: 3, nodes: [node(1, null, "new")] });
    model.set("head", 1);
    model.set("branches", { main: 1 });
    view.render();
    expect((el.querySelector(".nbconvo-details") as HTMLElement).hidden).toBe(false); // turn 1 exists again
    el.querySelector<HTMLElement>(".nbconvo-row[data-turn='1']")?.click();
    expect(model.sent.at(-1)).toMatchObject({ kind: "details-request", turn: 1 }); // asked again

    model.deliver({ kind: "reset", seq: 4 });
    view.render();
    expect((el.querySelector(".nbconvo-details") as HTMLElement).hidden).toBe(true);
  });
});

it("keeps JupyterLab's notebook shortcuts out of the tree", () => {
  const { el } = setup(1);
  expect(el.querySelector(".nbconvo-tree")?.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
});
