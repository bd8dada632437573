import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { daymindAuth, type DaymindAuth } from '../../src';
import { chromiumOptions, listen, pageApp, tempDir } from '../helpers';

// The page reads the browser's clock: the key's times are set from the real one.
let auth: DaymindAuth;
let server: Awaited<ReturnType<typeof listen>>;
let browser: Browser;
let base = '';

// Inside a describe, so that its afterAll runs before helpers' afterAll removes the temp dir.
describe('the usage page in Chromium', () => {
  beforeAll(async () => {
    auth = daymindAuth({ env: {}, storePath: join(tempDir(), 'api_keys.json'), billing: false });
    server = await listen(pageApp(auth));
    base = server.base;
    browser = await chromium.launch(chromiumOptions());
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server.close();
    await auth.close();
  });

  test('a key in its rotation grace period shows the earlier end: revoked in an hour, not its expiry in seven months', async () => {
    const now = Date.now() / 1000;
    const { key, record } = await auth.store.create({ owner: 'acme', expires_at: Math.floor(now) + 210 * 86_400 });
    const rotated = await auth.store.rotate!(record.key_hash, 3600);
    const page = await browser.newPage({ locale: 'en-US', timezoneId: 'UTC' });
    try {
      await page.goto(`${base}/v1/usage/dashboard`);
      await page.fill('#key-input', key);
      await page.click('#key-submit');
      const expiresIn = page.locator('[data-field="expires_in"]').first();
      await expiresIn.filter({ hasText: /\S/ }).waitFor();
      expect(await expiresIn.textContent()).toMatch(/^In (60 minutes|1 hour)$/);
      expect(await expiresIn.getAttribute('data-value')).toBe(String(rotated!.previous.revoke_at));
      expect(await page.locator('#revoke-warning').textContent()).toMatch(
        /^This key will be revoked on .* \(it has been replaced by a new key\)\./,
      );
      // The new key has only its expiry.
      await page.evaluate('sessionStorage.clear()');
      await page.goto(`${base}/v1/usage/dashboard`);
      await page.fill('#key-input', rotated!.key);
      await page.click('#key-submit');
      await expiresIn.filter({ hasText: /\S/ }).waitFor();
      expect(await expiresIn.textContent()).toBe('In 7 months');
    } finally {
      await page.close();
    }
  });
});
