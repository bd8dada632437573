#!/usr/bin/env node
// Makes docs/dashboard.png, the usage page shown in README.md and docs/usage-page.md:
// `npm run screenshots` (it builds first when the sources changed). The built example server runs
// in a temp dir with a key used for weeks: 29 earlier days of history, and today 25 requests of
// which 5 are refused by a per-IP limit of 20. Debian's Chromium shows the page (never a browser
// download). The test suite drives the same page but never writes into docs/.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const root = path.resolve(__dirname, '..');
const { FileUsageHistory, JsonFileKeyStore, hashKey, historyDirFor } = require(path.join(root, 'dist', 'cjs'));
const { dayOffset } = require(path.join(root, 'dist', 'cjs', 'usage', 'history.js'));

const OUT = path.join(root, 'docs', 'dashboard.png');
const IP_LIMIT = 20;
const TRAFFIC = 25;
const DAY_MS = 86_400_000;

/** A key for "acme-analytics", expiring in 60 days, with 29 days of history and counters to match. */
async function seedKey(storePath) {
  const now = Date.now();
  const store = new JsonFileKeyStore({ path: storePath });
  const { key, record } = await store.create({ owner: 'acme-analytics', expires_at: Math.floor(now / 1000) + 60 * 86_400 });
  await store.close();
  const entries = [];
  for (let ago = 29; ago >= 1; ago--) {
    const weekday = new Date(now - ago * DAY_MS).getUTCDay();
    const allowed = (weekday === 0 || weekday === 6 ? 180 : 520) + Math.round(120 * Math.sin(ago / 4)) + ((ago * 37) % 90);
    const rate_limited = ago % 6 === 2 ? 15 + ((ago * 13) % 40) : 0;
    entries.push({ key_hash: hashKey(key), day: dayOffset(now, -ago), allowed, rate_limited });
  }
  await new FileUsageHistory({ dir: historyDirFor(storePath) }).add(entries);
  const records = JSON.parse(fs.readFileSync(storePath, 'utf8'));
  Object.assign(
    records.find((r) => r.key_hash === record.key_hash),
    {
      created_at: Math.floor(now / 1000) - 40 * 86_400,
      usage_count: entries.reduce((n, e) => n + e.allowed, 0),
    },
  );
  fs.writeFileSync(storePath, JSON.stringify(records, null, 2));
  return key;
}

/** The built example server in `cwd`, once it has started; rejects with its output if it exits. */
function startServer(cwd) {
  const child = spawn(process.execPath, [path.join(root, 'build', 'examples', 'server.js')], {
    cwd,
    env: { PATH: process.env.PATH, PORT: '0', IP_RATE_LIMIT_PER_MINUTE: String(IP_LIMIT) },
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const collect = (data) => {
      out += data;
      const url = /listening on (http:\/\/localhost:\d+)/.exec(out);
      if (url && out.includes('Create another key')) resolve({ child, url: url[1] });
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('exit', () => reject(new Error(`the example server exited:\n${out}`)));
  });
}

/** GET /v1/hello with the key, sent from `localAddress`; resolves to the status. */
function hello(url, key, localAddress) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      `${url.replace('localhost', '127.0.0.1')}/v1/hello`,
      { headers: { authorization: `Bearer ${key}` }, localAddress },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
  });
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daymind-screenshots-'));
  let server;
  let browser;
  try {
    const key = await seedKey(path.join(dir, 'data', 'api_keys.json'));
    server = await startServer(dir);
    // Today's traffic, from another address than the browser's: IP_LIMIT allowed, the rest refused.
    for (let i = 0; i < TRAFFIC; i++) await hello(server.url, key, '127.0.0.2');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking'] });
    const context = await browser.newContext({
      locale: 'en-US',
      timezoneId: 'UTC',
      colorScheme: 'light',
      viewport: { width: 1100, height: 900 },
    });
    const page = await context.newPage();
    await page.goto(`${server.url}/v1/usage/dashboard`);
    await page.fill('#key-input', key);
    await page.click('#key-submit');
    await page.locator('#chart g.day').first().waitFor();
    await page.screenshot({ path: OUT, fullPage: true });
    console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
  } finally {
    await browser?.close();
    if (server) {
      const exited = new Promise((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM'); // it writes the page's usage to the store: wait before removing it
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
