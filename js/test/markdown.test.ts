import { describe, expect, it } from "vitest";
import { markdownToSafeHtml, renderMarkdown, sanitizeHtml } from "../src/markdown";

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
  "[x](jav&#x61;script:window.__xss=1)",
  "[x](&#106;avascript:window.__xss=1)",
  "<javascript:window.__xss=1>",
  "[x][r]\n\n[r]: javascript:window.__xss=1",
  "[x](vbscript:msgbox(1))",
  "![x](javascript:window.__xss=1)",
  "![x](data:image/svg+xml,<svg onload=window.__xss=1>)",
];

// Markup that would make the browser fetch something if it survived.
const FETCHES = [
  "<img src=\"http://127.0.0.1:9999/raw-img.png?secret=42\">",
  "![x](http://127.0.0.1:9999/md-img.png?secret=43)",
  "<picture><source srcset=\"http://127.0.0.1:9999/p.png\"></picture>",
  "<video poster=\"http://127.0.0.1:9999/v.png\" src=\"http://127.0.0.1:9999/v.mp4\"></video>",
  "<audio src=\"http://127.0.0.1:9999/a.mp3\"></audio>",
  "<table background=\"http://127.0.0.1:9999/t.png\"><tr><td>x</td></tr></table>",
  "<link rel=\"stylesheet\" href=\"http://127.0.0.1:9999/s.css\">",
  "<style>@import url(http://127.0.0.1:9999/i.css)</style>",
  "<p style=\"background:url(http://127.0.0.1:9999/b.png)\">x</p>",
  "<object data=\"http://127.0.0.1:9999/o\"></object><embed src=\"http://127.0.0.1:9999/e\">",
  "<base href=\"http://127.0.0.1:9999/\"><meta http-equiv=\"refresh\" content=\"0;url=http://127.0.0.1:9999/\">",
  "<svg><image href=\"http://127.0.0.1:9999/s.png\"/></svg>",
];

const FETCHING_TAGS = "img, picture, source, video, audio, iframe, object, embed, link, meta, base, svg, math, style, input";
const FETCHING_ATTRS = ["src", "srcset", "poster", "background", "style", "action", "formaction", "xlink:href", "data"];
const SAFE_HREF = /^(?:https?|mailto):/i;

function container(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

function fragment(text: string): HTMLElement {
  const div = document.createElement("div");
  div.append(renderMarkdown(text));
  return div;
}

function assertInert(root: ParentNode): void {
  expect(root.querySelectorAll("script, form, details, summary").length).toBe(0);
  expect(root.querySelectorAll(FETCHING_TAGS).length).toBe(0);
  for (const el of Array.from(root.querySelectorAll("*"))) {
    for (const attr of Array.from(el.attributes)) {
      expect(attr.name.startsWith("on"), `${el.tagName} ${attr.name}`).toBe(false);
      expect(FETCHING_ATTRS, `${el.tagName} ${attr.name}`).not.toContain(attr.name);
      if (attr.name === "href") expect(attr.value, `${el.tagName} href`).toMatch(SAFE_HREF);
    }
  }
}

describe("ordinary Markdown", () => {
  it("renders headings, emphasis, code and links", () => {
    const html = markdownToSafeHtml("# Title\n\n**bold** and `code` and [a link](https://example.org)\n\n```py\nx = 1 < 2\n```");
    const root = container(html);
    expect(root.querySelector("h1")?.textContent).toBe("Title");
    expect(root.querySelector("strong")?.textContent).toBe("bold");
    expect(root.querySelector("pre code")?.textContent).toContain("x = 1 < 2");
    const link = root.querySelector("a");
    expect(link?.getAttribute("href")).toBe("https://example.org");
    expect(link?.getAttribute("rel")).toBe("noopener noreferrer nofollow");
    expect(link?.getAttribute("target")).toBe("_blank");
  });

  it("escapes < in code spans and fenced code exactly once", () => {
    const html = markdownToSafeHtml("`a < b` and `<b>x</b>`\n\n```\na < b\n<i>y</i>\n```");
    expect(html).toContain("<code>a &lt; b</code>");
    expect(html).toContain("<code>&lt;b&gt;x&lt;/b&gt;</code>");
    expect(html).toContain("<pre><code>a &lt; b\n&lt;i&gt;y&lt;/i&gt;\n</code></pre>");
    expect(html).not.toContain("&amp;");
    const root = container(html);
    expect(root.querySelector("pre code")?.textContent).toBe("a < b\n<i>y</i>\n");
    expect(root.querySelectorAll("p code")[1]?.textContent).toBe("<b>x</b>");
    expect(root.querySelector("b, i")).toBeNull();
  });

  it("renders lists and tables, keeping their plain attributes", () => {
    const root = fragment("- one\n- two\n\n3. three\n4. four\n\n| a | b |\n|:-:|--:|\n| 1 | 2 |");
    expect(Array.from(root.querySelectorAll("ul > li")).map((li) => li.textContent)).toEqual(["one", "two"]);
    expect(root.querySelector("ol")?.getAttribute("start")).toBe("3");
    expect(root.querySelectorAll("ol > li").length).toBe(2);
    expect(Array.from(root.querySelectorAll("th")).map((th) => th.textContent)).toEqual(["a", "b"]);
    expect(Array.from(root.querySelectorAll("td")).map((td) => td.getAttribute("align"))).toEqual(["center", "right"]);
  });

  it("renders the same through the string and the fragment path", () => {
    const text = "# T\n\nUse <b>b</b> ![i](https://e.org/i.png) [l](https://e.org)";
    expect(fragment(text).innerHTML).toBe(container(markdownToSafeHtml(text)).innerHTML);
  });
});

describe("raw HTML is shown as text", () => {
  it("escapes inline HTML", () => {
    const html = markdownToSafeHtml("Use <b>bold</b> here");
    expect(html).toBe("<p>Use &lt;b&gt;bold&lt;/b&gt; here</p>\n");
    const root = fragment("Use <b>bold</b> here");
    expect(root.textContent).toContain("Use <b>bold</b> here");
    expect(root.querySelector("b")).toBeNull();
  });

  it("escapes block HTML and still renders the Markdown inside it", () => {
    const root = fragment("<div class=\"x\">\n**bold** <b>tag</b>\n</div>");
    expect(root.querySelector("div")).toBeNull();
    expect(root.querySelector("b")).toBeNull();
    expect(root.querySelector("strong")?.textContent).toBe("bold");
    expect(root.textContent).toContain("<div class=\"x\">");
    expect(root.textContent).toContain("<b>tag</b>");
    expect(root.textContent).toContain("</div>");
  });

  it("does not create a details element", () => {
    const text = "<details open>\n<summary>More</summary>\n\nhidden text\n</details>";
    const root = fragment(text);
    expect(root.querySelector("details")).toBeNull();
    expect(root.querySelector("summary")).toBeNull();
    expect(root.textContent).toContain("<details open>");
    expect(root.textContent).toContain("<summary>More</summary>");
    expect(root.textContent).toContain("hidden text");
  });

  it("shows a raw <img> tag as its source text", () => {
    const tag = "<img src=\"http://127.0.0.1:9999/raw-img.png?secret=42\">";
    for (const text of [tag, `inline ${tag} here`]) {
      const root = fragment(text);
      expect(root.querySelector("img")).toBeNull();
      expect(root.querySelector("[src]")).toBeNull();
      expect(root.textContent).toContain(tag);
    }
  });

  it("keeps the text of scripts and comments readable and inert", () => {
    const root = fragment("Use <b>bold</b> and <script>alert(1)</script> carefully <!-- note -->");
    expect(root.textContent).toBe("Use <b>bold</b> and <script>alert(1)</script> carefully <!-- note -->\n");
    expect(root.querySelector("b, script")).toBeNull();
  });

  it("escapes HTML inside link text", () => {
    const root = fragment("[<img src=x onerror=alert(1)>](https://e.org)");
    expect(root.querySelector("img")).toBeNull();
    expect(root.querySelector("a")?.textContent).toBe("<img src=x onerror=alert(1)>");
  });
});

describe("Markdown images are never loaded", () => {
  it("turns an http(s) image into a link showing its address", () => {
    for (const url of ["https://example.org/pic.png?secret=43", "http://127.0.0.1:9999/md-img.png?secret=43"]) {
      const root = fragment(`see ![a chart](${url} "Title")`);
      const links = root.querySelectorAll("a");
      expect(links.length).toBe(1);
      const link = links[0];
      expect(link?.getAttribute("href")).toBe(url);
      expect(link?.getAttribute("title")).toBe("Title");
      expect(link?.getAttribute("target")).toBe("_blank");
      expect(link?.getAttribute("rel")).toBe("noopener noreferrer nofollow");
      expect(link?.textContent).toBe(`🖼 a chart (${url})`);
      expect(root.querySelector("img")).toBeNull();
      assertInert(root);
    }
  });

  it("shows other images as their alt text only, without a link", () => {
    const cases = [
      "![the alt](data:image/png;base64,AAAA)",
      "![the alt](javascript:alert(1))",
      "![the alt](relative/pic.png)",
      "![the alt](//evil.example/pic.png)",
      "![the alt](ftp://evil.example/pic.png)",
    ];
    for (const text of cases) {
      const root = fragment(text);
      expect(root.querySelector("a"), text).toBeNull();
      expect(root.querySelector("img"), text).toBeNull();
      expect(root.textContent, text).toBe("🖼 the alt\n");
    }
  });

  it("does not nest a link inside a linked image", () => {
    const root = fragment("[![build](https://ci.example/badge.svg)](https://ci.example/run)");
    const links = root.querySelectorAll("a");
    expect(links.length).toBe(1);
    expect(links[0]?.getAttribute("href")).toBe("https://ci.example/run");
    expect(links[0]?.textContent).toBe("🖼 build");
  });

  for (const text of FETCHES) {
    it(`makes nothing fetchable from ${text.slice(0, 50)}`, () => {
      assertInert(container(markdownToSafeHtml(text)));
      assertInert(fragment(`before\n\n${text}\n\nafter`));
    });
  }
});

describe("links", () => {
  it("keeps http, https and mailto and drops every other href", () => {
    const root = fragment(
      "[h](http://e.org) [s](https://e.org/x?y=1) [m](mailto:me@e.org) " +
        "[r](relative/page) [d](data:text/html,hi) [j](javascript:alert(1)) [v](vbscript:x) [f](ftp://e.org)",
    );
    const hrefs = Object.fromEntries(Array.from(root.querySelectorAll("a")).map((a) => [a.textContent, a.getAttribute("href")]));
    expect(hrefs).toEqual({
      h: "http://e.org",
      s: "https://e.org/x?y=1",
      m: "mailto:me@e.org",
      r: null,
      d: null,
      j: null,
      v: null,
      f: null,
    });
  });

  it("gives autolinks the new-tab attributes", () => {
    const root = fragment("<https://e.org/a> and www.example.com");
    const links = Array.from(root.querySelectorAll("a"));
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["https://e.org/a", "http://www.example.com"]);
    for (const a of links) {
      expect(a.getAttribute("target")).toBe("_blank");
      expect(a.getAttribute("rel")).toBe("noopener noreferrer nofollow");
    }
  });

  const OBFUSCATED = [
    "[x](jav&#x61;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](java\\script:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x]( javascript:alert(1) )",
    "<javascript:alert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x][r]\n\n[r]: jav&#x61;script:alert(1)",
  ];
  for (const text of OBFUSCATED) {
    it(`drops the href of ${JSON.stringify(text)}`, () => {
      const root = fragment(text);
      expect(root.querySelector("a"), "the link text is still there").not.toBeNull();
      expect(root.querySelector("[href]")).toBeNull();
    });
  }
});

describe("DOMPurify backstop (HTML that did not come from marked)", () => {
  it("removes fetching and embedding elements", () => {
    const root = container(
      sanitizeHtml(
        "<p>keep</p><img src=x><picture><source srcset=y></picture><video poster=p></video><audio src=a></audio>" +
          "<iframe src=f></iframe><object data=o></object><embed src=e><link href=l><meta content=m><base href=b>" +
          "<svg><image href=s /></svg><math><mi>x</mi></math><style>p{}</style><input type=image src=i>",
      ),
    );
    expect(root.querySelector("p")?.textContent).toBe("keep");
    expect(root.querySelectorAll(FETCHING_TAGS).length).toBe(0);
  });

  it("removes fetching attributes and non-web hrefs", () => {
    const root = container(
      sanitizeHtml(
        "<table background=t><tr><td style=\"background:url(x)\">c</td></tr></table>" +
          "<a href=\"https://ok.example\">ok</a><a href=\"relative\">rel</a><a href=\"javascript:alert(1)\">js</a>" +
          "<a href=\"data:text/html,x\">data</a><a xlink:href=\"https://x\">x</a>",
      ),
    );
    expect(root.querySelector("td")?.textContent).toBe("c");
    assertInert(root);
    expect(Array.from(root.querySelectorAll("a")).map((a) => a.getAttribute("href"))).toEqual([
      "https://ok.example",
      null,
      null,
      null,
      null,
    ]);
  });
});

describe("script injection", () => {
  for (const attack of ATTACKS) {
    it(`neutralizes ${attack.slice(0, 50)}`, () => {
      assertInert(container(markdownToSafeHtml(attack)));
      assertInert(fragment(`before\n\n${attack}\n\nafter`));
    });
  }

  it("does not run anything when the fragment is attached", () => {
    const win = window as unknown as { __xss?: number };
    delete win.__xss;
    const host = document.createElement("div");
    document.body.append(host);
    for (const attack of ATTACKS) host.append(renderMarkdown(attack));
    expect(host.childNodes.length).toBeGreaterThan(0);
    expect(win.__xss).toBeUndefined();
    host.remove();
  });
});
