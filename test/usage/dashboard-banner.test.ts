import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import request from 'supertest';
import { daymindAuth, type DaymindAuth } from '../../src';
import { chromiumOptions, listen, pageApp, tempDir } from '../helpers';

// The page reads the browser's clock: the server runs on the real one (the quota's month).
let auth: DaymindAuth;
let server: Awaited<ReturnType<typeof listen>>;
let browser: Browser;

// Inside a describe, so that its afterAll runs before helpers' afterAll removes the temp dir.
describe('the usage page warns before the key runs out', () => {
  beforeAll(async () => {
    auth = daymindAuth({
      env: {},
      storePath: join(tempDir(), 'api_keys.json'),
      billing: false,
      ipRateLimitPerMinute: false,
      plans: { small: { limits: [], monthly_quota: 10 } },
    });
    server = await listen(pageApp(auth));
    browser = await chromium.launch(chromiumOptions());
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server.close();
    await auth.close();
  });

  /** The banner's text for `key` after `uses` requests (null when hidden). */
  async function bannerAfter(key: string, uses: number): Promise<string | null> {
    for (let i = 0; i < uses; i++) await request(server.base).get('/v1/hello').set('x-api-key', key).expect(200);
    const page = await browser.newPage({ locale: 'en-US', timezoneId: 'UTC' });
    try {
      await page.goto(`${server.base}/v1/usage/dashboard`);
      await page.fill('#key-input', key);
      await page.click('#key-submit');
      await page.locator('[data-field="usage_count"]').filter({ hasText: /\S/ }).waitFor();
      const banner = page.locator('#usage-banner');
      return (await banner.isVisible()) ? await banner.textContent() : null;
    } finally {
      await page.close();
    }
  }

  test('at 80% of the monthly quota, and not below', async () => {
    const { key } = await auth.store.create({ owner: 'acme', plan: 'small' });
    expect(await bannerAfter(key, 7)).toBeNull();
    expect(await bannerAfter(key, 1)).toBe('This key has used 80% of its monthly quota (8 of 10).');
  });

  test('low on prepaid credits: under a fifth of the refill, or under 100 without one', async () => {
    const refilled = await auth.store.create({ owner: 'acme', credits_refill: { interval: 'monthly', amount: 1000 }, credits: 201 });
    expect(await bannerAfter(refilled.key, 0)).toBeNull();
    expect(await bannerAfter(refilled.key, 2)).toBe('This key has 199 prepaid credits left.');
    const prepaid = await auth.store.create({ owner: 'acme', credits: 100 });
    expect(await bannerAfter(prepaid.key, 0)).toBeNull();
    expect(await bannerAfter(prepaid.key, 1)).toBe('This key has 99 prepaid credits left.');
  });
});
