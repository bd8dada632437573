/**
 * The customer usage page (`usageRouter({ dashboard: true })`) in a real browser: Debian's
 * Chromium driven by playwright-core (never a browser download), against the real example server.
 *
 * The main key looks like one in use for weeks: its 29 earlier days of history are written with the
 * library's FileUsageHistory before the server starts, and its record's counters to match. Today's
 * numbers are real: the server runs with a per-IP limit of 20 and today's traffic is sent from
 * 127.0.0.2, 25 requests, so 5 are refused with 429 and show as rate-limited in the key's history,
 * while the browser (127.0.0.1 or ::1) has its own, nearly untouched, per-IP allowance.
 */
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { generateKey } from '../../src/keys';
import { JsonFileKeyStore } from '../../src/store/json/json-file-store';
import type { HistoryEntry } from '../../src/usage/history';
import { CLEAR_OF_MIDNIGHT_TIMEOUT_MS, chromiumOptions, clearOfMidnight, startExampleServer, tempDir } from '../helpers';
import { dayNumbers, digits, field, seedPastUsage, submitKey } from './page-helpers';

/** The test's screenshot goes to a temp dir; docs/dashboard.png is made by `npm run screenshots`. */
const SCREENSHOT = join(tempDir(), 'dashboard.png');
/** The page's policy, spelled out: a change to the one in src must be made here too, on purpose. */
const STRICT_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const IP_LIMIT = 20;
const TRAFFIC = 25;
/** What Chromium logs for a data call the server refuses: expected on the error paths only. */
const REFUSED_RESOURCE = /^Failed to load resource: the server responded with a status of (401|429)/;

interface Usage {
  key_prefix: string;
  owner: string;
  usage_count: number;
  requests_today: number;
  created_at: number;
  last_used: number | null;
  expires_at: number | null;
  revoke_at: number | null;
  rate_limits: { policy: string; limit: number; remaining: number; reset_seconds: number; window_seconds: number }[];
}
interface History {
  days: { day: string; allowed: number; rate_limited: number }[];
}

/** What one page did: console errors, uncaught errors, CSP violations seen by the page. */
interface Watched {
  page: Page;
  errors: string[];
}

let server: ChildProcess | undefined;
let exited: Promise<number | null> | undefined;
let browser: Browser | undefined;
let base = '';
let dashboard = '';
const keys = { main: '', revoked: '', expired: '', limited: '' };
/** The main key's allowed requests before today, as seeded. */
let seeded: HistoryEntry[] = [];
/** The UTC day of the run (YYYY-MM-DD), taken once at set-up. */
let today = '';
/** Every request a page made in the current test, with its headers. */
const requests: { url: string; headers: Record<string, string> }[] = [];

/** The keys of the run, written to the store file the server will open. */
async function createKeys(path: string): Promise<void> {
  const store = new JsonFileKeyStore({ path });
  try {
    const now = Date.now() / 1000;
    keys.main = (await store.create({ owner: 'acme-analytics', expires_at: Math.floor(now) + 60 * 86_400 })).key;
    const revoked = await store.create({ owner: 'old-integration' });
    await store.revoke(revoked.record.key_hash);
    keys.revoked = revoked.key;
    keys.expired = (await store.create({ owner: 'trial', expires_at: Math.floor(now) - 60 })).key;
    keys.limited = (await store.create({ owner: 'tiny', rate_limit_per_minute: 1 })).key;
  } finally {
    await store.close();
  }
}

/** GET /v1/hello with the key, sent from `localAddress`; resolves to the status. */
function hello(key: string, localAddress: string): Promise<number> {
  return new Promise((done, fail) => {
    const req = request(
      `${base.replace('localhost', '127.0.0.1')}/v1/hello`,
      { headers: { authorization: `Bearer ${key}` }, localAddress },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode!));
      },
    );
    req.on('error', fail);
    req.end();
  });
}

async function openPage(options: BrowserContextOptions = {}): Promise<{ context: BrowserContext; watched: Watched }> {
  const context = await browser!.newContext({ locale: 'en-US', timezoneId: 'UTC', colorScheme: 'light', ...options });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
  page.on('request', (req) => requests.push({ url: req.url(), headers: req.headers() }));
  await page.addInitScript({
    content:
      "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
  });
  return { context, watched: { page, errors } };
}

const pathOf = (url: string): string => new URL(url).pathname + new URL(url).search;
const isData = (url: string): boolean => /\/v1\/usage(\/history)?(\?|$)/.test(new URL(url).pathname + new URL(url).search);

describe('GET /v1/usage/dashboard in Chromium', () => {
  beforeAll(async () => {
    // The server reads the real clock; the seeded days and today's figures need one UTC day.
    await clearOfMidnight();
    today = new Date().toISOString().slice(0, 10);
    const cwd = tempDir();
    const store = join(cwd, 'data', 'api_keys.json');
    await createKeys(store);
    seeded = await seedPastUsage(store, keys.main);

    const started = await startExampleServer(cwd, { IP_RATE_LIMIT_PER_MINUTE: String(IP_LIMIT) });
    server = started.child;
    exited = started.exited;
    base = started.url;
    dashboard = `${base}/v1/usage/dashboard`;

    // The traffic of the chart, from another address than the browser's.
    const statuses: number[] = [];
    for (let i = 0; i < TRAFFIC; i++) statuses.push(await hello(keys.main, '127.0.0.2'));
    expect(statuses.filter((s) => s === 200)).toHaveLength(IP_LIMIT);
    expect(statuses.filter((s) => s === 429)).toHaveLength(TRAFFIC - IP_LIMIT);

    browser = await chromium.launch(chromiumOptions());
  }, CLEAR_OF_MIDNIGHT_TIMEOUT_MS);

  // Each test's own requests: a page made some, and none carried a key in its URL.
  afterEach(() => {
    const made = requests.splice(0);
    expect(made.length).toBeGreaterThan(0);
    for (const r of made) for (const key of Object.values(keys)) expect(r.url).not.toContain(key);
  });

  // Inside the describe, so that they run before helpers' afterAll removes the temp dir.
  afterAll(async () => {
    try {
      await browser?.close();
    } finally {
      server?.kill('SIGTERM');
    }
    expect(await exited).toBe(0); // the server flushed the page's usage and stopped cleanly
  });

  test('without a key: the form, a strict CSP, and no data call', async () => {
    const { context, watched } = await openPage();
    try {
      const { page } = watched;
      const response = (await page.goto(dashboard))!;
      expect(response.status()).toBe(200);
      expect(response.headers()['content-security-policy']).toBe(STRICT_CSP);
      expect(response.headers()['content-type']).toBe('text/html; charset=utf-8');
      await page.waitForLoadState('networkidle');
      expect(await page.isVisible('#key-form')).toBe(true);
      expect(await page.isHidden('#usage')).toBe(true);
      const input = page.locator('#key-input');
      expect(await input.getAttribute('type')).toBe('password');
      expect(await input.getAttribute('autocomplete')).toBe('off');
      expect(await input.getAttribute('name')).toBeNull(); // a form submitted without the script sends no key
      const made = requests.filter((r) => r.url.startsWith(base)).map((r) => pathOf(r.url));
      expect(made.sort()).toEqual(['/v1/usage/dashboard', '/v1/usage/dashboard.css', '/v1/usage/dashboard.js']);
      expect(watched.errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test('with the key: the numbers of its own /v1/usage, a 30-day chart and table, the key in no URL or cookie', async () => {
    const { context, watched } = await openPage({ viewport: { width: 1100, height: 900 } });
    try {
      const { page } = watched;
      await page.goto(dashboard);
      const historyResponse = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/usage/history');
      const { status, body } = await submitKey(page, keys.main);
      expect(status).toBe(200);
      const usage = body as Usage;
      const history = (await (await historyResponse).json()) as History;
      await page.locator('#chart g.day').first().waitFor();

      // The server's numbers: the seeded days, then today's 20 allowed and 5 refused (the page's own calls are not usage).
      const before = seeded.reduce((n, e) => n + e.allowed, 0);
      expect(usage.usage_count).toBe(before + IP_LIMIT);
      expect(history.days.slice(0, 29).map((d) => [d.allowed, d.rate_limited])).toEqual(seeded.map((e) => [e.allowed, e.rate_limited]));
      const last = history.days[history.days.length - 1]!;
      expect(last.rate_limited).toBe(TRAFFIC - IP_LIMIT);
      expect(last.day).toBe(today);

      expect((await field(page, '[data-field="owner"]')).text).toBe(usage.owner);
      expect((await field(page, '[data-field="key_prefix"]')).text).toBe(usage.key_prefix);
      for (const name of ['usage_count', 'requests_today'] as const) {
        const shown = await field(page, `[data-field="${name}"]`);
        expect([name, shown.value, digits(shown.text)]).toEqual([name, String(usage[name]), String(usage[name])]);
      }
      for (const name of ['last_used', 'created_at', 'expires_at', 'revoke_at'] as const) {
        expect([name, (await field(page, `#usage [data-field="${name}"]`)).value]).toEqual([name, String(usage[name] ?? '')]);
      }
      expect(usage.expires_at).not.toBeNull();
      expect(usage.rate_limits.length).toBeGreaterThan(0);
      for (const limit of usage.rate_limits) {
        for (const name of ['limit', 'remaining', 'reset_seconds', 'window_seconds'] as const) {
          const shown = await field(page, `[data-policy="${limit.policy}"] [data-field="${name}"]`);
          expect([limit.policy, name, shown.value]).toEqual([limit.policy, name, String(limit[name])]);
        }
      }

      // Chart: one bar group per day, two bars each with a title; the table has the same numbers.
      expect(history.days).toHaveLength(30);
      expect(await page.locator('#chart svg g.day').count()).toBe(30);
      expect(await page.locator('#chart svg g.day rect.bar').count()).toBe(60);
      expect(await page.locator('#chart svg g.day rect.bar > title').count()).toBe(60);
      const bar = page.locator(`#chart g.day[data-day="${last.day}"] rect.bar.limited`);
      expect(await bar.getAttribute('data-value')).toBe(String(last.rate_limited));
      expect(Number(await bar.getAttribute('height'))).toBeGreaterThan(0);
      expect(await page.locator('#history-rows tr').count()).toBe(30);
      expect(await page.locator('#history-rows th[scope="row"]').count()).toBe(30);
      // Every row (newest first) and every bar carries the numbers of the page's history response.
      const expected = history.days.map((d) => [d.day, d.allowed, d.rate_limited]);
      expect(await dayNumbers(page, '#history-rows tr', 'td')).toEqual([...expected].reverse());
      expect(await dayNumbers(page, '#chart g.day', 'rect.bar')).toEqual(expected);
      const row = page.locator(`#history-rows tr[data-day="${last.day}"]`);
      expect(await row.locator('[data-field="allowed"]').getAttribute('data-value')).toBe(String(last.allowed));
      expect(await page.locator('#history-table caption').textContent()).toContain('30 days');

      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // The key: in sessionStorage, in the Authorization header of the data calls, nowhere else.
      expect(await page.evaluate('document.cookie')).toBe('');
      expect(await page.evaluate("sessionStorage.getItem('daymind-usage-key')")).toBe(keys.main);
      expect(await page.evaluate('localStorage.length')).toBe(0);
      const data = requests.filter((r) => isData(r.url));
      expect(data.map((r) => pathOf(r.url))).toEqual(['/v1/usage', '/v1/usage/history?days=30']);
      for (const r of data) expect([r.headers.authorization, r.headers.cookie]).toEqual([`Bearer ${keys.main}`, undefined]);
      expect(await page.evaluate('document.documentElement.outerHTML')).not.toContain(keys.main);

      // Reloaded, the tab still has the key; "Forget key" drops it.
      await page.reload();
      await page.locator('#chart g.day').first().waitFor();
      await page.click('#forget');
      expect(await page.evaluate("sessionStorage.getItem('daymind-usage-key')")).toBeNull();
      expect(await page.isVisible('#key-form')).toBe(true);
      expect(await page.isHidden('#usage')).toBe(true);
      expect(watched.errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test('a wrong, revoked or expired key, or a client over the per-IP limit, gets a clear message, not a chart', async () => {
    const { context, watched } = await openPage();
    const { page } = watched;
    const cases: [string, string, number, string | undefined, RegExp][] = [
      ['unknown', generateKey(), 401, 'invalid_api_key', /not known/],
      ['garbage', 'not-a-key', 401, 'malformed_api_key', /not a valid API key/],
      ['revoked', keys.revoked, 401, 'revoked_api_key', /revoked/],
      ['expired', keys.expired, 401, 'expired_api_key', /expired/],
      ['over the per-IP limit', keys.limited, 429, 'rate_limited', /Too many requests from your network.*Try again in 42 seconds/],
    ];
    // The browser's own address stays under the server's per-IP limit: its 429 is played here.
    await page.route('**/v1/usage', (route) =>
      route.request().headers().authorization === `Bearer ${keys.limited}`
        ? route.fulfill({
            status: 429,
            contentType: 'application/json; charset=utf-8',
            headers: { 'Retry-After': '42' },
            body: JSON.stringify({
              error: {
                code: 'rate_limited',
                message: 'Rate limit of 20 requests per minute exceeded for this client address; retry in 42 s.',
                policy: 'ip',
              },
            }),
          })
        : route.continue(),
    );
    try {
      // Tried one after the other, as someone would: a refused key brings the form back.
      await page.goto(dashboard);
      for (const [name, key, status, code, message] of cases) {
        const res = await submitKey(page, key);
        expect([name, res.status, (res.body as { error: { code: string } }).error.code]).toEqual([name, status, code]);
        await page.locator('#alert').filter({ hasText: message }).waitFor();
        expect([name, await page.isHidden('#usage'), await page.locator('#chart g.day').count()]).toEqual([name, true, 0]);
        // A refused key is dropped and the form is back; a rate-limited one is kept, to try again.
        expect([name, await page.isVisible('#key-form')]).toEqual([name, status === 401]);
      }
      // Spaces are no key: said at once, nothing sent.
      await page.click('#forget');
      const before = requests.length;
      await page.fill('#key-input', 'my key');
      await page.click('#key-submit');
      await page
        .locator('#alert')
        .filter({ hasText: /does not look like an API key/ })
        .waitFor();
      expect(requests.slice(before).filter((r) => isData(r.url))).toEqual([]);
      expect(watched.errors.filter((e) => !REFUSED_RESOURCE.test(e))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test('a server without per-day history (501): the numbers, a note, no chart', async () => {
    const { context, watched } = await openPage();
    try {
      const { page } = watched;
      await page.route('**/v1/usage/history?*', (route) =>
        route.fulfill({
          status: 501,
          contentType: 'application/json',
          body: JSON.stringify({ error: { code: 'history_unavailable', message: 'This server keeps no per-day usage history.' } }),
        }),
      );
      await page.goto(dashboard);
      const usage = (await submitKey(page, keys.main)).body as Usage;
      await page
        .locator('#history-note')
        .filter({ hasText: /no per-day history/ })
        .waitFor();
      expect((await field(page, '[data-field="usage_count"]')).value).toBe(String(usage.usage_count));
      expect([await page.isHidden('#chart'), await page.isHidden('#history-table'), await page.textContent('#alert')]).toEqual([
        true,
        true,
        '',
      ]);
      expect(watched.errors.filter((e) => !/status of 501/.test(e))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  test('on a phone (390 x 844): no horizontal scroll, the chart and table fit', async () => {
    const { context, watched } = await openPage({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
    });
    try {
      const { page } = watched;
      await page.goto(dashboard);
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      expect((await submitKey(page, keys.main)).status).toBe(200);
      await page.locator('#chart g.day').first().waitFor();
      expect(await page.locator('#chart svg g.day').count()).toBe(30);
      await page.click('#table-details summary');
      expect(await page.isVisible('#history-table')).toBe(true);
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      const svgBox = (await page.locator('#chart svg').boundingBox())!;
      expect(svgBox.x + svgBox.width).toBeLessThanOrEqual(390);
      expect(watched.errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
