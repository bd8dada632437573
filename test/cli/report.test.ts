import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import request from 'supertest';
import { daymindAuth, FileUsageHistory, historyDirFor, JsonFileKeyStore, LocalLedgerProvider, type UsageReport } from '../../src';
import type { Report, ReportDay } from '../../src/cli/report-data';
import { appWith, chromiumOptions, isoMonth, tempDir, TEST_NOW } from '../helpers';
import { cli, cliAt } from './run';

/** An owner name that is HTML, to show every owner is escaped. */
const EVIL = `<script>alert("x")</script> & 'co'`;

interface UsageJson {
  owners: Array<{ owner: string; keys: number; usage_count: number; requests_today: number }>;
  keys: Array<{ key_hash: string; usage_count: number; requests_today: number }>;
}
interface ExportRow {
  month: string;
  owner: string;
  quantity: number;
  keys: number;
}
/** Every server and command here runs on this clock: today and this month never move while the tests run. */
const NOW = TEST_NOW;
const now = () => NOW;
const json = async <T>(args: string[]): Promise<T> => {
  const run = await cliAt(NOW, args);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as T;
};

let dir: string;
let store: string;
let month: string;
let previous: string;
const hashes: Record<string, string> = {};

/**
 * A store with three owners: acme (two keys), EVIL (one key limited to 3 a minute) and idle (no
 * usage). Real traffic through the middleware this month; last month's ledger lines and history
 * are written by the same writers the servers use, on chosen days.
 */
beforeAll(async () => {
  dir = tempDir();
  store = join(dir, 'api_keys.json');
  const keyStore = new JsonFileKeyStore({ path: store, now });
  const keys: Record<string, string> = {};
  for (const [name, owner, limit] of [
    ['acme1', 'acme', null],
    ['acme2', 'acme', null],
    ['evil', EVIL, 3],
    ['idle', 'idle-co', null],
  ] as const) {
    const created = await keyStore.create({ owner, rate_limit_per_minute: limit });
    keys[name] = created.key;
    hashes[name] = created.record.key_hash;
  }
  await keyStore.close();

  const auth = daymindAuth({
    env: {},
    storePath: store,
    ipRateLimitPerMinute: false,
    flushIntervalMs: 60_000,
    billingIntervalMs: 60_000,
    onError: () => undefined,
    now,
  });
  const app = appWith(auth);
  const hit = async (key: string, times: number, status = 200) => {
    for (let i = 0; i < times; i++) expect((await request(app).get('/v1/hello').set('X-API-Key', key)).status).toBe(status);
  };
  await hit(keys.acme1!, 6);
  await hit(keys.acme2!, 2);
  await auth.flush();
  await hit(keys.acme1!, 3);
  await hit(keys.evil!, 3);
  await hit(keys.evil!, 2, 429);
  await auth.close();
  month = isoMonth(NOW);

  const today = new Date(NOW);
  const at = (day: number, seconds = 12 * 3600) => Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 1, day) / 1000 + seconds;
  previous = isoMonth(at(1) * 1000);
  const ledger = new LocalLedgerProvider(dir, now);
  const line = (id: string, key: string, owner: string, quantity: number, end: number): UsageReport => ({
    identifier: id,
    key_hash: hashes[key]!,
    key_prefix: '',
    owner,
    customer_id: null,
    quantity,
    window_start: end - 1,
    window_end: end,
  });
  await ledger.deliver(line('p1', 'acme1', 'acme', 40, at(3)));
  await ledger.deliver(line('p1', 'acme1', 'acme', 40, at(3))); // delivered twice: counted once
  await ledger.deliver(line('p2', 'acme2', 'acme', 5, at(17, 0))); // window ends at midnight: the 17th
  await ledger.deliver(line('p3', 'evil', EVIL, 7, at(17, 0) - 0.001)); // a millisecond before: the 16th
  await ledger.deliver(line('p4', 'acme1', 'acme', 2, Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1) / 1000 - 0.5)); // its last day
  const history = new FileUsageHistory({ dir: historyDirFor(store), now });
  const day17 = Number(new Date(at(17) * 1000).toISOString().slice(0, 10).replace(/-/g, ''));
  await history.add([{ key_hash: hashes.evil!, day: day17, allowed: 1, rate_limited: 9 }]);
}, 30_000);

test('report --help, and report in the tool help', async () => {
  const help = await cli(['report', '--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toMatch(/^Usage: daymind-keys report \[--month YYYY-MM\] \[--owner OWNER\] \[--html FILE\]/);
  expect((await cli(['--help'])).stdout).toMatch(/^ {2}report {2,}a month's usage per owner/m);
});

describe('report --json', () => {
  test("this month: units equal export's quantity, all-time and today equal usage --json", async () => {
    const report = await json<Report>(['--store', store, '--json', 'report']);
    const usage = await json<UsageJson>(['--store', store, '--json', 'usage']);
    const exported = await json<ExportRow[]>(['--store', store, '--json', 'export', '--month', month]);
    expect(report.month).toBe(month);
    expect(report.owner).toBeNull();
    expect(report.owners.map((o) => o.owner)).toEqual(['acme', EVIL, 'idle-co']);
    for (const o of report.owners) {
      const u = usage.owners.find((x) => x.owner === o.owner)!;
      expect({ keys: o.keys, usage_count: o.usage_count, requests_today: o.requests_today }).toEqual({
        keys: u.keys,
        usage_count: u.usage_count,
        requests_today: u.requests_today,
      });
      const e = exported.find((x) => x.owner === o.owner);
      expect([o.units, o.keys_with_usage]).toEqual([e?.quantity ?? 0, e?.keys ?? 0]);
      expect(o.days.reduce((s, d) => s + d.units, 0)).toBe(o.units);
    }
    // Fresh keys: this month's units are their whole usage.
    expect(report.owners.map((o) => [o.units, o.usage_count, o.rate_limited])).toEqual([
      [11, 11, 0],
      [3, 3, 2],
      [0, 0, 0],
    ]);
    expect(report.totals).toMatchObject({
      owners: 3,
      keys: 4,
      keys_with_usage: 3,
      units: 14,
      usage_count: 14,
      requests_today: 14,
      rate_limited: 2,
    });
    const today = new Date(NOW).toISOString().slice(0, 10);
    expect(report.owners[0]!.days.find((d) => d.day === today)).toEqual({ day: today, units: 11, rate_limited: 0 });
    expect(report.owners[0]!.days).toHaveLength(new Date(Date.UTC(+month.slice(0, 4), +month.slice(5), 0)).getUTCDate());
    expect(report.history).toMatchObject({ to: today, missing: [] });
    expect(report.top_keys.map((k) => [k.key_hash, k.units, k.usage_count, k.status])).toEqual([
      [hashes.acme1, 9, 9, 'active'],
      [hashes.evil, 3, 3, 'active'],
      [hashes.acme2, 2, 2, 'active'],
    ]);
    expect(report.top_keys[0]!.key_prefix).toMatch(/^dm_/);
  });

  test('last month: units per UTC day of the window end, a report delivered twice counted once', async () => {
    const report = await json<Report>(['--store', store, '--json', 'report', '--month', previous]);
    const exported = await json<ExportRow[]>(['--store', store, '--json', 'export', '--month', previous]);
    expect(exported.map((e) => [e.owner, e.quantity, e.keys])).toEqual([
      [EVIL, 7, 1],
      ['acme', 47, 2],
    ]);
    const acme = report.owners.find((o) => o.owner === 'acme')!;
    const evil = report.owners.find((o) => o.owner === EVIL)!;
    expect([acme.units, acme.keys_with_usage, evil.units]).toEqual([47, 2, 7]);
    const busy = (days: ReportDay[]) => days.filter((d) => d.units > 0).map((d) => [d.day.slice(8), d.units]);
    const last = String(acme.days.length);
    expect(busy(acme.days)).toEqual([
      ['03', 40],
      ['17', 5],
      [last, 2],
    ]);
    expect(busy(evil.days)).toEqual([['16', 7]]);
    expect(evil.days.filter((d) => (d.rate_limited ?? 0) > 0)).toEqual([{ day: `${previous}-17`, units: 0, rate_limited: 9 }]);
    expect(evil.rate_limited).toBe(9);
    // The store's figures are the same whatever the month.
    const usage = await json<UsageJson>(['--store', store, '--json', 'usage']);
    expect(acme.usage_count).toBe(usage.owners.find((o) => o.owner === 'acme')!.usage_count);
    expect(report.top_keys.map((k) => [k.key_hash, k.units])).toEqual([
      [hashes.acme1, 42],
      [hashes.evil, 7],
      [hashes.acme2, 5],
    ]);
  });

  test('--owner keeps one owner; one with keys but no usage is all zeros', async () => {
    const one = await json<Report>(['--store', store, '--json', 'report', '--owner', EVIL]);
    expect(one.owner).toBe(EVIL);
    expect(one.owners.map((o) => [o.owner, o.units, o.rate_limited])).toEqual([[EVIL, 3, 2]]);
    expect(one.top_keys.map((k) => k.key_hash)).toEqual([hashes.evil]);
    const idle = await json<Report>(['--store', store, '--json', 'report', '--owner', 'idle-co']);
    expect(idle.totals).toMatchObject({ units: 0, keys: 1, keys_with_usage: 0 });
    expect(idle.top_keys).toEqual([]);
  });

  test('without --json or --html: a table', async () => {
    const run = await cliAt(NOW, ['--store', store, 'report']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^OWNER\s+KEYS\s+UNITS\s+RATE-LIMITED\s+USAGE\s+TODAY$/m);
    expect(run.stdout).toMatch(/^acme\s+2\s+11\s+0\s+11\s+11$/m);
    expect(run.stdout).toMatch(/^idle-co\s+1\s+0\s+0\s+0\s+0$/m);
    expect(run.stdout).toMatch(/^PREFIX\s+OWNER\s+STATUS\s+UNITS\s+RATE-LIMITED\s+USAGE\s+TODAY$/m);
    expect(run.stdout).toContain('14 units in the month');
  });
});

describe('report --html', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch(chromiumOptions());
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  /** Opens the file and records every request the page makes. */
  async function open(file: string, viewport = { width: 1200, height: 900 }): Promise<{ page: Page; requests: string[] }> {
    const page = await browser.newPage({ viewport });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return { page, requests };
  }

  const number = (text: string) => (text === '–' ? null : Number(text.replace(/,/g, '')));

  test('in a browser: the totals of usage --json and export, no request but the file, owners escaped', async () => {
    const file = join(tempDir(), 'usage report.html');
    const run = await cliAt(NOW, ['--store', store, 'report', '--html', file]);
    expect(run).toMatchObject({ code: 0, stdout: `${resolve(file)}\n` });
    const html = readFileSync(file, 'utf8');
    expect(html).not.toMatch(/https?:|<script|<link|<img|<iframe|\burl\(|@import|\bsrc=|\bhref=/i);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(file, '..'))).toEqual(['usage report.html']);

    const usage = await json<UsageJson>(['--store', store, '--json', 'usage']);
    const exported = await json<ExportRow[]>(['--store', store, '--json', 'export', '--month', month]);
    const { page, requests } = await open(file);
    try {
      const rows = await page.$$eval('#owners-table tbody tr', (trs) =>
        trs.map((tr) => ({
          owner: tr.getAttribute('data-owner')!,
          shown: tr.querySelector('th')!.textContent,
          cells: Object.fromEntries(
            [...tr.querySelectorAll('td[data-field]')].map((td) => [td.getAttribute('data-field'), td.textContent!]),
          ),
        })),
      );
      expect(rows.map((r) => r.owner)).toEqual(['acme', EVIL, 'idle-co']);
      for (const row of rows) {
        expect(row.shown).toBe(row.owner);
        const u = usage.owners.find((o) => o.owner === row.owner)!;
        const e = exported.find((o) => o.owner === row.owner);
        expect({
          keys: number(row.cells.keys!),
          usage_count: number(row.cells.usage_count!),
          requests_today: number(row.cells.requests_today!),
          units: number(row.cells.units!),
          keys_with_usage: number(row.cells.keys_with_usage!),
        }).toEqual({
          keys: u.keys,
          usage_count: u.usage_count,
          requests_today: u.requests_today,
          units: e?.quantity ?? 0,
          keys_with_usage: e?.keys ?? 0,
        });
      }
      const total = await page.$$eval('#owners-table tfoot td[data-field]', (tds) =>
        Object.fromEntries(tds.map((td) => [td.getAttribute('data-field'), td.textContent!])),
      );
      expect(number(total.usage_count!)).toBe(usage.owners.reduce((s, o) => s + o.usage_count, 0));
      expect(number(total.requests_today!)).toBe(usage.owners.reduce((s, o) => s + o.requests_today, 0));
      expect(number(total.units!)).toBe(exported.reduce((s, o) => s + o.quantity, 0));
      expect(number(total.rate_limited!)).toBe(2);
      expect(await page.textContent('dd[data-field="usage_count"]')).toBe(total.usage_count);

      const keys = await page.$$eval('#keys-table tbody tr', (trs) =>
        trs.map((tr) => [tr.getAttribute('data-key'), tr.querySelector('td[data-field="usage_count"]')!.textContent]),
      );
      expect(keys).toEqual(
        usage.keys
          .filter((k) => k.usage_count > 0)
          .map((k) => [k.key_hash, String(k.usage_count)])
          .sort((a, b) => +b[1]! - +a[1]!),
      );

      // One chart per owner with usage, each with a table of its days beside it.
      expect(
        await page.$$eval('article.owner', (as) => as.map((a) => [a.getAttribute('data-owner'), a.querySelectorAll('svg rect.u').length])),
      ).toEqual([
        ['acme', 1],
        [EVIL, 1],
        ['idle-co', 0],
      ]);
      expect(await page.$$eval('article.owner svg[role="img"] > title', (ts) => ts.map((t) => t.textContent))).toEqual([
        expect.stringMatching(/^Units per day of acme, /),
        `Units per day of ${EVIL}, ${await page.$eval('h1', (h) => h.textContent!.replace('API usage, ', ''))}`,
      ]);
      expect(await page.$$eval('script', (scripts) => scripts.length)).toBe(0);
      expect(await page.title()).toMatch(/^API usage, \w+ \d{4}$/);
      expect(requests).toEqual([pathToFileURL(file).href]);
    } finally {
      await page.close();
    }

    // On a phone, the page does not scroll sideways: wide tables scroll inside their box.
    const phone = await open(file, { width: 390, height: 844 });
    try {
      expect(await phone.page.$eval('html', (root) => root.scrollWidth)).toBeLessThanOrEqual(390);
      expect(phone.requests).toEqual([pathToFileURL(file).href]);
    } finally {
      await phone.page.close();
    }
  });

  test('--html with --json: the file, and the JSON on stdout', async () => {
    const file = join(tempDir(), 'r.html');
    writeFileSync(file, 'old');
    const run = await cliAt(NOW, ['--store', store, '--json', 'report', '--month', previous, '--html', file]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe(`Wrote ${file}\n`);
    expect(JSON.parse(run.stdout).month).toBe(previous);
    expect(readFileSync(file, 'utf8')).toMatch(/^<!doctype html>[\s\S]*<\/html>\n$/);
  });
});

describe('report: bad input', () => {
  const cases: Array<{ name: string; args: string[]; code: number; message: RegExp }> = [
    {
      name: 'a bad month',
      args: ['--month', '2026-13'],
      code: 2,
      message: /--month: "2026-13" is not YYYY-MM \(see daymind-keys --help\)/,
    },
    { name: 'a month in the future', args: ['--month', '2999-01'], code: 2, message: /--month: "2999-01" is in the future/ },
    { name: 'an empty --html', args: ['--html', ''], code: 2, message: /--html: the path is empty/ },
    {
      name: 'an unknown owner',
      args: ['--owner', 'nobody'],
      code: 1,
      message: /no keys belong to "nobody" and the ledger has no usage of it in \d{4}-\d{2}$/,
    },
    { name: 'an option of another command', args: ['--price', '1 USD'], code: 2, message: /report does not take --price/ },
  ];
  test.each(cases)('$name: exit $code, one line on stderr, no file written', async ({ args, code, message }) => {
    const out = join(tempDir(), 'report.html');
    writeFileSync(out, 'previous report');
    const before = readFileSync(store);
    const run = await cliAt(NOW, ['--store', store, 'report', '--html', out, ...args]);
    expect(run.code).toBe(code);
    expect(run.stderr.trim()).toMatch(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stdout).toBe('');
    expect(readFileSync(out, 'utf8')).toBe('previous report');
    expect(readdirSync(join(out, '..'))).toEqual(['report.html']);
    expect(readFileSync(store).equals(before)).toBe(true);
  });

  test('an --html path that cannot be written: exit 1, a message naming it, nothing left behind', async () => {
    const base = tempDir();
    const aFile = join(base, 'file.txt');
    writeFileSync(aFile, 'x');
    mkdirSync(join(base, 'a-dir'));
    for (const [target, message] of [
      [join(base, 'missing', 'r.html'), `the directory ${join(base, 'missing')} does not exist`],
      [join(aFile, 'r.html'), `the directory ${aFile} does not exist`],
      [join(base, 'a-dir'), 'it is a directory'],
    ]) {
      const run = await cliAt(NOW, ['--store', store, 'report', '--html', target!]);
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(`daymind-keys: cannot write the report ${target}: ${message}\n`);
      expect(run.stdout).toBe('');
    }
    expect(readdirSync(base).sort()).toEqual(['a-dir', 'file.txt']);
    expect(readdirSync(join(base, 'a-dir'))).toEqual([]);
  });

  test('a ledger directory that does not exist: exit 1 naming it', async () => {
    const missing = join(tempDir(), 'nothere');
    const run = await cliAt(NOW, ['--store', store, 'report', '--ledger-dir', missing]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^daymind-keys: cannot read the ledger directory ${missing}: ENOENT`));
  });
});
