/**
 * Accessibility of the customer usage page and of `daymind-keys report --html`: axe-core, with its
 * default rules (WCAG 2 A and AA, and best practices), run in Debian's Chromium in the light and
 * the dark colour scheme, on every state a customer sees: the page before a key is entered, with a
 * key's usage, chart and table, a rate-limited key's usage, and with the messages of a refused key
 * and of the per-IP limit.
 *
 * axe-core is put into the page with playwright's `evaluate`, which runs through the DevTools
 * protocol and is not subject to the page's Content-Security-Policy (`script-src 'self'` on the
 * page, `default-src 'none'` in the report): the pages are audited as served, with their CSP in
 * force, and no `bypassCSP`.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import axe from 'axe-core';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import request from 'supertest';
import { daymindAuth, FileUsageHistory, historyDirFor, JsonFileKeyStore, LocalLedgerProvider, type DaymindAuth } from '../../src';
import { generateKey, hashKey } from '../../src/keys';
import { dayOffset, type HistoryEntry } from '../../src/usage/history';
import { appWith, chromiumOptions, isoMonth, listen, pageApp, tempDir, TEST_NOW } from '../helpers';
import { cliAt } from '../cli/run';

const SCHEMES = ['light', 'dark'] as const;
type Scheme = (typeof SCHEMES)[number];

/**
 * Runs axe-core on the page's document; returns its violations, one readable line per element:
 * where (the state and scheme), the rule, its impact, the element and axe-core's summary.
 */
async function audit(page: Page, where: string): Promise<string[]> {
  if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(axe.source);
  const results = (await page.evaluate('axe.run(document, { resultTypes: ["violations"] })')) as axe.AxeResults;
  return results.violations.flatMap((v) =>
    v.nodes.map(
      (n) => `${where}: ${v.id} (${v.impact}) at ${n.target.join(' ')}: ${(n.failureSummary ?? v.help).replace(/\s*\n\s*/g, ' ')}`,
    ),
  );
}

let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch(chromiumOptions());
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

const WIDE = { width: 1100, height: 900 };
/** The narrowest width WCAG's reflow criterion asks for. */
const PHONE = { width: 320, height: 640 };

function context(colorScheme: Scheme, viewport = WIDE): Promise<BrowserContext> {
  return browser.newContext({ locale: 'en-US', timezoneId: 'UTC', colorScheme, viewport });
}

// Inside a describe, so that its afterAll runs before helpers' afterAll removes the temp dir.
// The page reads the browser's clock: the keys' times and history days are set from the real one.
describe('the usage page, audited by axe-core', () => {
  let auth: DaymindAuth;
  let server: Awaited<ReturnType<typeof listen>> | undefined;
  let dashboard = '';
  const keys = { main: '', limited: '' };

  beforeAll(async () => {
    const store = join(tempDir(), 'api_keys.json');
    const now = Date.now();
    const keyStore = new JsonFileKeyStore({ path: store });
    // Expiring in three days, so that the page shows its warning too.
    const main = await keyStore.create({ owner: 'acme-analytics', expires_at: Math.floor(now / 1000) + 3 * 86_400 });
    keys.main = main.key;
    keys.limited = (await keyStore.create({ owner: 'tiny', rate_limit_per_minute: 1 })).key;
    await keyStore.close();
    // 29 earlier days, some with rate-limited requests: bars of both kinds and red table cells.
    const entries: HistoryEntry[] = [];
    for (let ago = 29; ago >= 1; ago--) {
      entries.push({
        key_hash: hashKey(keys.main),
        day: dayOffset(now, -ago),
        allowed: 100 + ago * 7,
        rate_limited: ago % 5 === 0 ? 12 : 0,
      });
    }
    await new FileUsageHistory({ dir: historyDirFor(store) }).add(entries);

    auth = daymindAuth({ env: {}, storePath: store, billing: false });
    server = await listen(pageApp(auth));
    dashboard = `${server.base}/v1/usage/dashboard`;
  });

  afterAll(async () => {
    await server?.close();
    await auth?.close();
  });

  async function submit(page: Page, key: string): Promise<void> {
    await page.fill('#key-input', key);
    await page.click('#key-submit');
  }

  test.each(SCHEMES)('%s: without a key, with a key (usage, chart and table), and a refused key', async (scheme) => {
    const found: string[] = [];
    const ctx = await context(scheme);
    try {
      const page = await ctx.newPage();
      const response = await page.goto(dashboard);
      expect(response!.headers()['content-security-policy']).toContain("script-src 'self'"); // audited under its CSP
      await page.waitForLoadState('networkidle');
      expect(await page.evaluate(`matchMedia('(prefers-color-scheme: ${scheme})').matches`)).toBe(true);
      found.push(...(await audit(page, `${scheme}, the form before a key`)));

      await submit(page, keys.main);
      await page.locator('#chart g.day').first().waitFor();
      await page
        .locator('#status')
        .filter({ hasText: /^Updated at/ })
        .waitFor();
      await page.click('#table-details summary');
      expect(await page.isVisible('#history-table')).toBe(true);
      expect(await page.isVisible('#revoke-warning')).toBe(true);
      expect(await page.locator('#history-rows td.limited').count()).toBeGreaterThan(0);
      found.push(...(await audit(page, `${scheme}, a key's usage, chart and table`)));
      // On a phone: one column, the chart redrawn to its width.
      await page.setViewportSize(PHONE);
      await page.waitForFunction(`document.querySelector('#chart svg').getAttribute('width') <= ${PHONE.width}`);
      found.push(...(await audit(page, `${scheme}, a key's usage at ${PHONE.width} px`)));
      await page.setViewportSize(WIDE);

      // A key the server does not know: the alert, and the form back.
      await page.click('#forget');
      await submit(page, generateKey());
      await page.locator('#alert').filter({ hasText: /\S/ }).waitFor();
      expect(await page.isVisible('#key-form')).toBe(true);
      found.push(...(await audit(page, `${scheme}, a refused key's message`)));
    } finally {
      await ctx.close();
    }
    expect(found).toEqual([]);
  });

  test.each(SCHEMES)("%s: the per-IP limit's message, with Refresh and Forget key", async (scheme) => {
    let found: string[] = [];
    const ctx = await context(scheme);
    try {
      const page = await ctx.newPage();
      // The page's data call refused by the per-IP limit (played here: the test's address stays under it).
      await page.route('**/v1/usage', (route) =>
        route.fulfill({
          status: 429,
          contentType: 'application/json; charset=utf-8',
          headers: { 'Retry-After': '42' },
          body: JSON.stringify({ error: { code: 'rate_limited', message: 'Too many requests.', policy: 'ip' } }),
        }),
      );
      await page.goto(dashboard);
      await submit(page, keys.limited);
      await page
        .locator('#alert')
        .filter({ hasText: /Too many requests/ })
        .waitFor();
      await page.locator('#refresh:enabled').waitFor();
      expect(await page.isVisible('#key-actions')).toBe(true);
      found = await audit(page, `${scheme}, the per-IP limit's message`);
    } finally {
      await ctx.close();
    }
    expect(found).toEqual([]);
  });

  test.each(SCHEMES)("%s: a rate-limited key's numbers, its spent limit and the note saying so", async (scheme) => {
    // The limited key spends its one request of this minute (a second one is refused).
    await request(server!.base).get('/v1/hello').set('Authorization', `Bearer ${keys.limited}`);
    await request(server!.base).get('/v1/hello').set('Authorization', `Bearer ${keys.limited}`).expect(429);
    let found: string[] = [];
    const ctx = await context(scheme);
    try {
      const page = await ctx.newPage();
      await page.goto(dashboard);
      await submit(page, keys.limited);
      await page
        .locator('#limited-note')
        .filter({ hasText: /refused right now: its limit "key" is used up/ })
        .waitFor();
      expect(await page.locator('[data-policy="key"] [data-field="remaining"]').getAttribute('data-value')).toBe('0');
      expect(await page.textContent('#alert')).toBe('');
      found = await audit(page, `${scheme}, a rate-limited key's numbers`);
    } finally {
      await ctx.close();
    }
    expect(found).toEqual([]);
  });
});

describe('daymind-keys report --html, audited by axe-core', () => {
  const files: Record<string, string> = {};

  /**
   * A store with three owners, one with rate-limited requests, and two reports of it: this month's
   * (traffic through the middleware, the days still to come) and last month's (units on 20 days,
   * so that the list of days scrolls).
   */
  beforeAll(async () => {
    const dir = tempDir();
    const store = join(dir, 'api_keys.json');
    const now = () => TEST_NOW;
    const keyStore = new JsonFileKeyStore({ path: store, now });
    const acme = await keyStore.create({ owner: 'acme', rate_limit_per_minute: 3 });
    const other = (await keyStore.create({ owner: 'other-co' })).key;
    await keyStore.create({ owner: 'idle-co' });
    await keyStore.close();
    const auth = daymindAuth({ env: {}, storePath: store, ipRateLimitPerMinute: false, onError: () => undefined, now });
    const app = appWith(auth);
    for (const [key, times] of [
      [acme.key, 5],
      [other, 2],
    ] as const) {
      for (let i = 0; i < times; i++) await request(app).get('/v1/hello').set('X-API-Key', key);
    }
    await auth.close();

    const today = new Date(TEST_NOW);
    const ledger = new LocalLedgerProvider(dir, now);
    for (let day = 1; day <= 20; day++) {
      const end = Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 1, day, 12) / 1000;
      await ledger.deliver({
        identifier: `last-month-${day}`,
        key_hash: acme.record.key_hash,
        key_prefix: '',
        owner: 'acme',
        customer_id: null,
        quantity: day * 3,
        window_start: end - 1,
        window_end: end,
      });
    }
    const previous = isoMonth(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 1, 1));
    for (const [name, args] of [
      ['this month', []],
      ['last month', ['--month', previous]],
    ] as const) {
      files[name] = join(dir, `${name}.html`);
      const run = await cliAt(TEST_NOW, ['--store', store, 'report', ...args, '--html', files[name]!]);
      expect([name, run.code, run.stderr]).toEqual([name, 0, '']);
    }
  }, 30_000);

  test.each(SCHEMES)("%s: this month's and last month's reports, wide and on a phone", async (scheme) => {
    const found: string[] = [];
    for (const [name, file] of Object.entries(files)) {
      for (const viewport of [WIDE, PHONE]) {
        const ctx = await context(scheme, viewport);
        try {
          const page = await ctx.newPage();
          await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
          // The states audited are there: rate-limited bars this month, boxes that scroll.
          if (name === 'this month') expect(await page.locator('svg.chart rect.r').count()).toBeGreaterThan(0);
          const scrolls = await page.$$eval('.scroll, .days-box', (boxes) =>
            boxes.filter((b) => b.scrollWidth > b.clientWidth || b.scrollHeight > b.clientHeight).map((b) => b.className),
          );
          if (name === 'last month') expect([viewport.width, scrolls.includes('days-box')]).toEqual([viewport.width, true]);
          if (viewport === PHONE) expect([name, scrolls.includes('scroll')]).toEqual([name, true]);
          found.push(...(await audit(page, `${scheme}, the report of ${name} at ${viewport.width} px`)));
        } finally {
          await ctx.close();
        }
      }
    }
    expect(found).toEqual([]);
  });
});
