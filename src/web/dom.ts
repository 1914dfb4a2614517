// A small helper for building DOM: h('div', { class: 'x', onclick }, child, 'text').

type Child = Node | string | number | null | undefined | false;
type Props<K extends keyof HTMLElementTagNameMap> = {
  [P in keyof HTMLElementTagNameMap[K]]?: HTMLElementTagNameMap[K][P] extends (...a: never[]) => unknown
    ? HTMLElementTagNameMap[K][P] | null : HTMLElementTagNameMap[K][P];
} & { class?: string; data?: Record<string, string>; attrs?: Record<string, string> };

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props<K> | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined) continue;
      if (k === 'class') el.className = v as string;
      else if (k === 'data') Object.assign(el.dataset, v);
      else if (k === 'attrs') for (const [a, av] of Object.entries(v as Record<string, string>)) el.setAttribute(a, av);
      else (el as unknown as Record<string, unknown>)[k] = v;
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Node): void { while (el.firstChild) el.removeChild(el.firstChild); }

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(0)} KB`;
  return `${n} B`;
}

export function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(0)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}K`;
  return String(n);
}

/** A labelled form field. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('span', { class: 'hint' }, hint) : null);
}

export function numberInput(value: number, opts: { min?: number; max?: number; step?: number } = {}): HTMLInputElement {
  const i = h('input', { type: 'number', value: String(value) });
  if (opts.min !== undefined) i.min = String(opts.min);
  if (opts.max !== undefined) i.max = String(opts.max);
  i.step = String(opts.step ?? 'any');
  i.inputMode = 'decimal';
  return i;
}

export function select(options: [string, string][], value: string): HTMLSelectElement {
  const s = h('select', null, ...options.map(([v, label]) => h('option', { value: v, textContent: label })));
  s.value = value;
  return s;
}

/** Save bytes as a file download. */
export function saveFile(name: string, bytes: Uint8Array | string, type = 'application/octet-stream'): void {
  const blob = new Blob([bytes as BlobPart], { type });
  const a = h('a', { href: URL.createObjectURL(blob), download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
