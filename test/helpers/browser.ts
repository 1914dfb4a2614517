// Browser tests: Debian's Chromium driven by playwright-core (no browser download), the web app built
// once per test process into a temp folder, and the automation hook (src/web/app.ts) read back from
// document.body.dataset.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/**
 * The slice of the page's DOM that callbacks run in the page (page.evaluate, waitForFunction) use;
 * the test program compiles without the DOM library.
 */
export interface PageDocument {
  body: { dataset: Record<string, string | undefined> };
  querySelector(selector: string): { textContent: string | null } | null;
}
declare const document: PageDocument;

export const CHROMIUM = process.env.OPENELM_CHROMIUM ?? '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Why the browser tests cannot run here, or null. CI sets OPENELM_REQUIRE_BROWSER=1 once Chromium is installed. */
export function browserUnavailable(): string | null {
  if (process.env.OPENELM_REQUIRE_BROWSER === '1') return null;
  return fs.existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)`;
}

// Headless, no sandbox (CI runs as root), WebGPU on (SwiftShader without a GPU), and none of
// Chromium's own network traffic (a closed network refuses it noisily).
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--headless', '--disable-gpu-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps',
  '--metrics-recording-only', '--no-default-browser-check',
];

/** Chromium with CHROMIUM_ARGS and `extraArgs`; `webgpu: false` leaves WebGPU as Linux builds ship it (no adapter). */
export async function launchChromium(extraArgs: string[] = [], opts: { webgpu?: boolean } = {}): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  const base = opts.webgpu === false ? CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu') : CHROMIUM_ARGS;
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...base, ...extraArgs] });
}

let built: Promise<string> | undefined;

/** The web app built from the current sources (once per process). */
export function builtWebApp(): Promise<string> {
  built ??= (async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-web-'));
    const { buildWeb } = await import(path.join(ROOT, 'scripts/build-web.mjs')) as { buildWeb(o: { out: string; logLevel?: string }): Promise<string[]> };
    await buildWeb({ out, logLevel: 'error' });
    return out;
  })();
  return built;
}

/** A page that records uncaught errors, console errors aside. */
export async function newPage(browser: Browser, viewport = { width: 1280, height: 800 }): Promise<{ context: BrowserContext; page: Page; pageErrors: string[] }> {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  return { context, page, pageErrors };
}

export interface HookResult {
  ids?: number[];
  error?: string;
  backend?: string;
  threads?: number;
  isolated?: boolean;
  uncaught?: string;
  tokensPerSecond?: number;
  promptPerSecond?: number;
  backends: string[];
  bannerVisible: boolean;
}

/** Open the app with `query`, wait for the automation hook's answer, and read it. */
export async function runHook(page: Page, base: string, query: Record<string, string>, timeoutMs = 60_000): Promise<HookResult> {
  await page.goto(`${base}/?${new URLSearchParams(query)}`);
  await page.waitForFunction(() => document.body.dataset.ids !== undefined || document.body.dataset.error !== undefined, null, { timeout: timeoutMs });
  const d = await page.evaluate(() => ({ ...document.body.dataset }));
  const banner = await page.$('#error-banner');
  return {
    ids: d.ids !== undefined ? JSON.parse(d.ids) as number[] : undefined,
    error: d.error,
    backend: d.backend,
    threads: d.threads !== undefined ? Number(d.threads) : undefined,
    isolated: d.isolated !== undefined ? d.isolated === 'true' : undefined,
    uncaught: d.uncaught,
    tokensPerSecond: d.tokensPerSecond !== undefined ? Number(d.tokensPerSecond) : undefined,
    promptPerSecond: d.promptPerSecond !== undefined ? Number(d.promptPerSecond) : undefined,
    backends: (d.backends ?? '').split(',').filter(Boolean),
    bannerVisible: banner !== null && await banner.isVisible(),
  };
}
