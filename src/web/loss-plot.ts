// The fine-tune tab's live loss curve: an SVG line over the steps, redrawn as steps arrive.

const NS = 'http://www.w3.org/2000/svg';
const H = 220, PAD = { l: 44, r: 12, t: 12, b: 26 };

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export function lossPlot(initialSteps: number): { el: SVGSVGElement; reset(steps: number): void; add(step: number, loss: number): void } {
  // The drawing is as wide as the element (one unit = one CSS pixel), so its text keeps its size on
  // a phone instead of shrinking with the picture.
  let W = 600;
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'loss-plot', role: 'img', 'aria-label': 'training loss by step' });
  const axes = svg('g', { class: 'axes' });
  const line = svg('polyline', { class: 'loss-line', fill: 'none', points: '' });
  const empty = svg('text', { y: (PAD.t + H - PAD.b) / 2, 'text-anchor': 'middle', class: 'empty-text' });
  empty.textContent = 'The loss appears here while training runs.';
  el.append(axes, line, empty);
  let steps = initialSteps;
  let pts: [number, number][] = [];

  function draw(): void {
    while (axes.firstChild) axes.removeChild(axes.firstChild);
    empty.setAttribute('x', String((PAD.l + W - PAD.r) / 2));
    const ys = pts.map((p) => p[1]);
    let lo = ys.length ? Math.min(...ys) : 0, hi = ys.length ? Math.max(...ys) : 1;
    if (hi - lo < 1e-6) { hi += 0.5; lo = Math.max(0, lo - 0.5); }
    const pad = (hi - lo) * 0.08;
    lo = Math.max(0, lo - pad); hi += pad;
    const x = (s: number) => PAD.l + ((s - 0) / Math.max(1, steps)) * (W - PAD.l - PAD.r);
    const y = (v: number) => PAD.t + (1 - (v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      axes.append(svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: 'grid' }));
      const t = svg('text', { x: PAD.l - 6, y: y(v) + 4, 'text-anchor': 'end' });
      t.textContent = v.toFixed(2);
      axes.append(t);
    }
    for (const s of [0, Math.round(steps / 2), steps]) {
      const t = svg('text', { x: x(s), y: H - 6, 'text-anchor': 'middle' });
      t.textContent = String(s);
      axes.append(t);
    }
    empty.style.display = pts.length ? 'none' : '';
    line.setAttribute('points', pts.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' '));
  }

  draw();
  // Redrawn in the next frame: a new viewBox changes the element's height, which inside the
  // observer's callback would be a resize loop.
  new ResizeObserver(() => requestAnimationFrame(() => {
    const w = Math.round(el.getBoundingClientRect().width);
    if (w > 0 && w !== W) {
      W = w;
      el.setAttribute('viewBox', `0 0 ${W} ${H}`);
      draw();
    }
  })).observe(el);
  return {
    el,
    reset(n: number) { steps = n; pts = []; draw(); },
    add(step: number, loss: number) { pts.push([step, loss]); draw(); },
  };
}
