// Model text → safe HTML: marked renders the Markdown, DOMPurify removes everything that
// could run (script, event handlers, javascript: URLs, SVG and MathML, forms, styles).

import DOMPurify from "dompurify";
import { Marked } from "marked";

const marked = new Marked({ gfm: true, breaks: false });

const CONFIG = {
  USE_PROFILES: { html: true }, // no SVG or MathML at all
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe"],
  FORBID_ATTR: ["style", "srcset", "action", "formaction"],
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
  return marked.parse(text, { async: false });
}

/** Sanitized HTML as a string (for tests and non-DOM callers). */
export function markdownToSafeHtml(text: string): string {
  return purifier().sanitize(toHtml(text), CONFIG);
}

/** Sanitized Markdown as a DOM fragment: no re-parse of an HTML string afterwards. */
export function renderMarkdown(text: string): DocumentFragment {
  return purifier().sanitize(toHtml(text), { ...CONFIG, RETURN_DOM_FRAGMENT: true });
}
