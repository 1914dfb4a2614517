// What the app's views share: the engine, the loaded model, the busy flag, and a way to show errors.

import type { Engine } from './engine-client.js';
import type { ModelInfo } from './protocol.js';

export type Tab = 'chat' | 'finetune' | 'model';

export interface AppContext {
  engine: Engine;
  model: ModelInfo | null;
  /** A generation, load or training run is in progress (the engine runs one at a time). */
  busy: boolean;
  /** The model the serving command (openelm web) offers, when there is one. */
  served: { model: string; name: string } | null;
  setModel(info: ModelInfo | null): void;
  setBusy(b: boolean): void;
  showTab(t: Tab): void;
  /** Show a one-line error in the page (and on document.body.dataset.error for automation). */
  error(message: string): void;
  clearError(): void;
  /** Subscribe to model/busy changes. */
  onChange(cb: () => void): void;
}

/** The message of anything thrown, for the page. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
