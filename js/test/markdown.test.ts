import { describe, expect, it } from "vitest";
import { markdownToSafeHtml, renderMarkdown } from "../src/markdown";

const ATTACKS = [
  "<script>window.__xss = 1</script>",
  "<img src=x onerror=\"window.__xss = 1\">",
  "[click me](javascript:window.__xss=1)",
  "[also](  JaVaScRiPt:window.__xss=1 )",
  "<a href=\"javascript:window.__xss=1\">raw link</a>",
  "<svg onload=\"window.__xss = 1\"><circle r=\"4\"/></svg>",
  "<svg><script>window.__xss = 1</script></svg>",
  "<iframe src=\"javascript:window.__xss=1\"></iframe>",
  "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
  "<details open ontoggle=\"window.__xss=1\">x</details>",
  "<form action=\"javascript:window.__xss=1\"><button>go</button></form>",
  "![img](x \"t\" onerror=window.__xss=1)",
  "<a href=\"data:text/html,<script>window.__xss=1</script>\">data</a>",
];

function container(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

function assertInert(root: ParentNode): void {
  expect(root.querySelectorAll("script, svg, math, iframe, form, style, object, embed").length).toBe(0);
  for (const el of Array.from(root.querySelectorAll("*"))) {
    for (const attr of Array.from(el.attributes)) {
      expect(attr.name.startsWith("on"), `${el.tagName} ${attr.name}`).toBe(false);
      if (["href", "src", "action", "xlink:href"].includes(attr.name)) {
        expect(attr.value.replace(/\s/g, "").toLowerCase()).not.toMatch(/^(javascript|data|vbscript):/);
      }
    }
  }
}

describe("markdown sanitizing", () => {
  it("renders ordinary Markdown", () => {
    const html = markdownToSafeHtml("# Title\n\n**bold** and `code` and [a link](https://example.org)\n\n```py\nx = 1 < 2\n```");
    const root = container(html);
    expect(root.querySelector("h1")?.textContent).toBe("Title");
    expect(root.querySelector("strong")?.textContent).toBe("bold");
    expect(root.querySelector("pre code")?.textContent).toContain("x = 1 < 2");
    const link = root.querySelector("a");
    expect(link?.getAttribute("href")).toBe("https://example.org");
    expect(link?.getAttribute("rel")).toContain("noopener");
    expect(link?.getAttribute("target")).toBe("_blank");
  });

  for (const attack of ATTACKS) {
    it(`neutralizes ${attack.slice(0, 50)}`, () => {
      assertInert(container(markdownToSafeHtml(attack)));
      assertInert(renderMarkdown(`before\n\n${attack}\n\nafter`));
    });
  }

  it("keeps the text of removed markup readable", () => {
    const html = markdownToSafeHtml("Use <b>bold</b> and <script>alert(1)</script> carefully");
    expect(html).toContain("<b>bold</b>");
    expect(html).not.toContain("alert(1)");
  });

  it("does not run anything when the fragment is attached", () => {
    const win = window as unknown as { __xss?: number };
    delete win.__xss;
    const host = document.createElement("div");
    document.body.append(host);
    for (const attack of ATTACKS) host.append(renderMarkdown(attack));
    expect(win.__xss).toBeUndefined();
    host.remove();
  });
});
