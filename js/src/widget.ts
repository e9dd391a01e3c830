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
  const cleanup = (): void => {
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

export default {
  render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
    return mount(model, el).cleanup;
  },
};
