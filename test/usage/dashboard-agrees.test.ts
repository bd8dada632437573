/**
 * The usage page agrees with itself and with the API, in Debian's Chromium: its cards (requests
 * today, all time, each limit), its chart and its table show the numbers that `GET /v1/usage` and
 * `GET /v1/usage/history` give anyone asking afterwards, after some traffic, after "Refresh" (its
 * own calls are not usage, so nothing moves), and while the key is refused by its "day" window:
 * then it shows its numbers, with that window at 0 and a note, not "Too many requests".
 */
import { join } from 'node:path';
import express from 'express';
import { chromium, type Browser, type Page } from 'playwright-core';
import request from 'supertest';
import { daymindAuth, type DaymindAuth } from '../../src';
import { chromiumOptions, listen, pageApp, tempDir, testClock } from '../helpers';

const PLANS = {
  daily: {
    limits: [
      { name: 'minute', limit: 100, window: '1m' },
      { name: 'day', limit: 5, window: '1d' },
    ],
  },
};

interface Usage {
  usage_count: number;
  requests_today: number;
  rate_limits: Array<{ policy: string; limit: number; remaining: number }>;
}
interface History {
  days: Array<{ day: string; allowed: number; rate_limited: number }>;
}

/** What the page shows, read from its data-value attributes. */
interface Shown {
  requests_today: number;
  usage_count: number;
  limits: Array<{ policy: string; limit: number; remaining: number }>;
  /** The chart's bars and the table's rows, oldest first: [day, allowed, rate-limited]. */
  chart: Array<[string, number, number]>;
  table: Array<[string, number, number]>;
  totals: { allowed: number; rate_limited: number };
}

async function shown(page: Page): Promise<Shown> {
  const value = async (selector: string) => Number(await page.locator(selector).first().getAttribute('data-value'));
  const limits = await page.locator('#limits [data-policy]').evaluateAll((cards) =>
    cards.map((card) => ({
      policy: card.getAttribute('data-policy')!,
      limit: Number(card.querySelector('[data-field="limit"]')!.getAttribute('data-value')),
      remaining: Number(card.querySelector('[data-field="remaining"]')!.getAttribute('data-value')),
    })),
  );
  const days = (selector: string, cells: string) =>
    page
      .locator(selector)
      .evaluateAll(
        (nodes, sel) =>
          nodes.map((n) => [n.getAttribute('data-day'), ...[...n.querySelectorAll(sel)].map((c) => Number(c.getAttribute('data-value')))]),
        cells,
      ) as Promise<Array<[string, number, number]>>;
  return {
    requests_today: await value('#usage [data-field="requests_today"]'),
    usage_count: await value('#usage [data-field="usage_count"]'),
    limits,
    chart: await days('#chart g.day', 'rect.bar'),
    table: (await days('#history-rows tr', 'td')).reverse(),
    totals: { allowed: await value('[data-field="total_allowed"]'), rate_limited: await value('[data-field="total_rate_limited"]') },
  };
}

/** What the API answers for the key now. */
async function fromApi(app: express.Express, key: string): Promise<{ usage: Usage; history: History }> {
  const usage = await request(app).get('/v1/usage').set('authorization', `Bearer ${key}`).expect(200);
  const history = await request(app).get('/v1/usage/history?days=30').set('authorization', `Bearer ${key}`).expect(200);
  return { usage: usage.body as Usage, history: history.body as History };
}

/** The page equals the API, and its parts equal each other: today's card is today's bar and row. */
function expectAgreement(page: Shown, api: { usage: Usage; history: History }): void {
  expect(page.requests_today).toBe(api.usage.requests_today);
  expect(page.usage_count).toBe(api.usage.usage_count);
  expect(page.limits).toEqual(api.usage.rate_limits.map(({ policy, limit, remaining }) => ({ policy, limit, remaining })));
  const days = api.history.days.map((d): [string, number, number] => [d.day, d.allowed, d.rate_limited]);
  expect(page.chart).toEqual(days);
  expect(page.table).toEqual(days);
  expect(page.totals).toEqual({
    allowed: days.reduce((n, d) => n + d[1], 0),
    rate_limited: days.reduce((n, d) => n + d[2], 0),
  });
  expect(page.chart.at(-1)![1]).toBe(page.requests_today); // every request costs 1 here
}

// Inside a describe, so that its afterAll runs before helpers' afterAll removes the temp dir.
describe('the usage page agrees with the API', () => {
  let auth: DaymindAuth;
  let app: express.Express;
  let server: Awaited<ReturnType<typeof listen>>;
  let browser: Browser;
  let base = '';

  beforeAll(async () => {
    auth = daymindAuth({ env: {}, storePath: join(tempDir(), 'api_keys.json'), billing: false, plans: PLANS, now: testClock().now });
    app = pageApp(auth);
    server = await listen(app);
    base = server.base;
    browser = await chromium.launch(chromiumOptions());
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server.close();
    await auth.close();
  });

  test('after some traffic, after Refresh, and while "day" refuses the key: the same numbers on the page and from the API', async () => {
    const { key } = await auth.store.create({ owner: 'acme', plan: 'daily' });
    const hello = () => request(app).get('/v1/hello').set('authorization', `Bearer ${key}`);
    for (let i = 0; i < 3; i++) await hello().expect(200);

    const page = await browser.newPage({ locale: 'en-US', timezoneId: 'UTC' });
    const data: number[] = [];
    page.on('response', (res) => {
      if (/\/v1\/usage(\/history)?$/.test(new URL(res.url()).pathname)) data.push(res.status());
    });
    const loaded = () => page.locator('#status').filter({ hasText: /^Updated at/ });
    try {
      await page.goto(`${base}/v1/usage/dashboard`);
      await page.fill('#key-input', key);
      await page.click('#key-submit');
      await loaded().waitFor();
      const first = await shown(page);
      expect([first.requests_today, first.usage_count]).toEqual([3, 3]);
      expect(first.chart.at(-1)!.slice(1)).toEqual([3, 0]);
      expectAgreement(first, await fromApi(app, key));
      expect(await page.isHidden('#limited-note')).toBe(true);

      // Its own calls are not usage: Refresh shows the same numbers.
      for (let i = 0; i < 2; i++) {
        await page.evaluate("document.getElementById('status').textContent = ''");
        await page.click('#refresh');
        await loaded().waitFor();
        expect(await shown(page)).toEqual(first);
      }

      // Two more allowed, the 6th and 7th of the day refused by "day"; the page still shows the numbers.
      await hello().expect(200);
      await hello().expect(200);
      for (let i = 0; i < 2; i++) expect((await hello()).body.error.policy).toBe('day');
      await page.evaluate("document.getElementById('status').textContent = ''");
      await page.click('#refresh');
      await loaded().waitFor();
      const limited = await shown(page);
      expect([limited.requests_today, limited.usage_count]).toEqual([5, 5]);
      expect(limited.chart.at(-1)!.slice(1)).toEqual([5, 2]);
      expect(limited.limits.find((l) => l.policy === 'day')).toEqual({ policy: 'day', limit: 5, remaining: 0 });
      expectAgreement(limited, await fromApi(app, key));
      expect(await page.textContent('#alert')).toBe('');
      expect(await page.textContent('#limited-note')).toMatch(
        /^Requests with this key are refused right now: its limit "day" is used up, for (24|23) hours more\.$/,
      );
      expect(data.length).toBe(8);
      expect(data.every((status) => status === 200)).toBe(true);
    } finally {
      await page.close();
    }
  });
});
