// anywidget entry: one Channel per model (shared by every display of it), one ConvoView per
// display. `render` returns the cleanup, as anywidget expects.

import "./widget.css";
import { Channel } from "./channel";
import type { WidgetModel } from "./protocol";
import { ConvoView } from "./view";

interface Shared {
  channel: Channel;
  views: number;
}

const shared = new WeakMap<WidgetModel, Shared>();

export function mount(model: WidgetModel, el: HTMLElement): { view: ConvoView; cleanup: () => void } {
  let entry = shared.get(model);
  if (entry === undefined) {
    entry = { channel: new Channel(model), views: 0 };
    shared.set(model, entry);
  }
  const { channel } = entry;
  entry.views += 1;
  if (channel.store.seq < 0 && channel.store.pending === null) channel.requestSnapshot();
  const view = new ConvoView(model, channel, el);
  const stopWatching = hideStaticPicture(el);
  const cleanup = (): void => {
    stopWatching();
    view.destroy();
    const current = shared.get(model);
    if (current === undefined) return;
    current.views -= 1;
    if (current.views === 0) {
      current.channel.dispose();
      shared.delete(model);
    }
  };
  return { view, cleanup };
}

/**
 * `%convo` shows the live widget and, as the next output of the cell, a static picture of
 * the tree for where no widget can render (a notebook reopened without its kernel,
 * GitHub, nbviewer). While the live widget shows, that picture is hidden.
 */
function hideStaticPicture(el: HTMLElement): () => void {
  let watch: MutationObserver | null = null;
  let frame: number | null = null;
  let tries = 0;
  const start = (): void => {
    frame = null;
    const output = el.closest(".jp-OutputArea-child");
    const area = output?.parentElement;
    if (output == null || area == null) {
      // not in an output area yet (or not JupyterLab/Notebook 7): look again, briefly
      if (tries++ < 120) frame = requestAnimationFrame(start);
      return;
    }
    const hide = (): boolean => {
      const next = output.nextElementSibling;
      if (next instanceof HTMLElement && next.querySelector(".nbconvo-static") !== null) {
        next.style.display = "none";
        return true;
      }
      return false;
    };
    if (hide()) return;
    // The picture is the cell's next output: it may arrive after the widget rendered.
    watch = new MutationObserver(() => {
      if (hide()) watch?.disconnect();
    });
    watch.observe(area, { childList: true });
  };
  start();
  return () => {
    if (frame !== null) cancelAnimationFrame(frame);
    watch?.disconnect();
  };
}

export default {
  render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
    return mount(model, el).cleanup;
  },
};
