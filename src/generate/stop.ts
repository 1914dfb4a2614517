// Stop strings over streamed text. Text that could still turn into a stop string is held back, so a
// stream never shows part of a stop string that is then cut off.

export class StopMatcher {
  private held = '';
  constructor(private readonly stops: readonly string[]) {}

  /** Feed new text; returns the text safe to emit and whether a stop string was hit. */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buf = this.held + text;
    let cut = -1;
    for (const s of this.stops) {
      if (!s) continue;
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) { this.held = ''; return { emit: buf.slice(0, cut), stopped: true }; }
    // Hold back the longest suffix of buf that is a prefix of some stop string.
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > hold; k--) {
        if (buf.endsWith(s.slice(0, k))) { hold = k; break; }
      }
    }
    this.held = buf.slice(buf.length - hold);
    return { emit: buf.slice(0, buf.length - hold), stopped: false };
  }

  /** End of generation without a stop: release what was held. */
  flush(): string { const h = this.held; this.held = ''; return h; }
}
