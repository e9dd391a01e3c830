// Model text → safe HTML. Model answers are untrusted, so:
// - raw HTML in the text (block and inline) is shown as escaped text, as the notebook cell
//   does (markdown-it with html=False);
// - nothing in the text makes the browser fetch anything: Markdown images become links
//   showing their address, and DOMPurify forbids every fetching element and attribute;
// - links keep only http, https and mailto addresses and open in a new tab.
// marked renders the Markdown, DOMPurify then removes anything that slipped through.

import DOMPurify from "dompurify";
import { Lexer, Marked, Renderer, type Tokens } from "marked";

const WEB_URL = /^https?:\/\//i;

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** The same URL clean-up marked applies to link and image destinations. */
function cleanUrl(href: string): string | null {
  try {
    return encodeURI(href).replace(/%25/g, "%");
  } catch {
    return null;
  }
}

// > 0 while a link's text is rendered: an image there becomes plain text, not a nested <a>.
let linkDepth = 0;

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Raw HTML: block tokens (Tokens.HTML, block: true) and inline tags (Tokens.Tag,
    // block: false) both arrive here. Show them as text. A block's text is treated like
    // the paragraph(s) markdown-it makes of it, so Markdown inside it still renders and
    // any tags in it become inline html tokens, which come back here and are escaped.
    html(token: Tokens.HTML | Tokens.Tag): string {
      if (!token.block) return escapeHtml(token.text);
      return token.text
        .trim()
        .split(/\n[ \t]*\n/)
        .map((chunk) => `<p>${this.parser.parseInline(Lexer.lexInline(chunk.trim(), this.options))}</p>\n`)
        .join("");
    },
    // No image is ever loaded: an http(s) image is a link showing its address, anything
    // else (data:, javascript:, relative) is just its alt text.
    image({ href, title, text, tokens }: Tokens.Image): string {
      const alt = escapeHtml(tokens ? this.parser.parseInline(tokens, this.parser.textRenderer) : text);
      const url = cleanUrl(href);
      if (linkDepth > 0 || url === null || !WEB_URL.test(url)) return `🖼 ${alt}`;
      const titleAttr = title ? ` title="${escapeHtml(title)}"` : "";
      return `<a href="${escapeHtml(url)}"${titleAttr}>🖼 ${alt} (${escapeHtml(url)})</a>`;
    },
    link(token: Tokens.Link): string {
      linkDepth++;
      try {
        return Renderer.prototype.link.call(this, token);
      } finally {
        linkDepth--;
      }
    },
  },
});

const CONFIG = {
  USE_PROFILES: { html: true }, // no SVG or MathML at all
  FORBID_TAGS: [
    "form", "input", "button", "textarea", "select", "option",
    // Anything that fetches or embeds, or could restyle the page.
    "img", "picture", "source", "video", "audio", "iframe", "object", "embed",
    "link", "meta", "base", "svg", "math", "style",
  ],
  FORBID_ATTR: ["src", "srcset", "poster", "background", "style", "action", "formaction", "xlink:href"],
  // Every URI-like attribute must be http, https or mailto; anything else (javascript:,
  // data:, vbscript:, relative) is dropped. The regex applies to all attributes not in
  // DOMPurify's URI-safe list, so the plain values marked emits are added to that list.
  ALLOWED_URI_REGEXP: /^(?:https?|mailto):/i,
  ADD_URI_SAFE_ATTR: ["align", "start"],
  ALLOW_DATA_ATTR: false,
};

let hooked = false;
function purifier(): typeof DOMPurify {
  if (!hooked) {
    // Links open in a new tab and cannot reach back into the notebook page.
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A" && node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
      }
    });
    hooked = true;
  }
  return DOMPurify;
}

function toHtml(text: string): string {
  linkDepth = 0;
  return marked.parse(text, { async: false });
}

/** The DOMPurify pass alone, on arbitrary HTML (exported to test the backstop). */
export function sanitizeHtml(html: string): string {
  return purifier().sanitize(html, CONFIG);
}

/** Sanitized HTML as a string (for tests and non-DOM callers). */
export function markdownToSafeHtml(text: string): string {
  return sanitizeHtml(toHtml(text));
}

/** Sanitized Markdown as a DOM fragment: no re-parse of an HTML string afterwards. */
export function renderMarkdown(text: string): DocumentFragment {
  return purifier().sanitize(toHtml(text), { ...CONFIG, RETURN_DOM_FRAGMENT: true });
}
