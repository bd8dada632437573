import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { daymindAuth } from '../../src';
import { appWith, isoMonth, tempDir, TEST_NOW } from '../helpers';
import { cliAt } from './run';

const NOW = TEST_NOW;
const now = () => NOW;
let dir: string;
let store: string;
const PLANS = { metered: { limits: [], monthly_quota: 100 } };
let plansFile: string;

/** An SMTP server of the test's own: every message it receives, parsed back. */
async function startSmtp(): Promise<{ url: string; received: ParsedMail[]; envelopes: string[][]; close(): Promise<void> }> {
  const received: ParsedMail[] = [];
  const envelopes: string[][] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      envelopes.push(session.envelope.rcptTo.map((r) => r.address));
      simpleParser(stream).then(
        (mail) => {
          received.push(mail);
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return { url: `smtp://127.0.0.1:${port}`, received, envelopes, close: () => new Promise<void>((r) => server.close(() => r())) };
}

beforeAll(async () => {
  dir = tempDir();
  store = join(dir, 'api_keys.json');
  plansFile = join(dir, 'plans.json');
  writeFileSync(plansFile, JSON.stringify(PLANS));
  const env = { DAYMIND_PLANS_FILE: plansFile };
  const create = async (args: string[]) => {
    const run = await cliAt(NOW, ['--store', store, '--json', 'create', ...args], env);
    expect(run.code).toBe(0);
    return JSON.parse(run.stdout) as { key: string; key_prefix: string };
  };
  const acme1 = await create(['acme', '--plan', 'metered', '--email', 'ops@acme.example']);
  const acme2 = await create(['acme', '--credits', '50']);
  const beta = await create(['beta']);
  expect((await cliAt(NOW, ['--store', store, 'set', beta.key_prefix, '--email', 'beta@beta.example'], env)).code).toBe(0);
  const gamma = await create(['gamma']);

  const auth = daymindAuth({ env: {}, storePath: store, plans: PLANS, ipRateLimitPerMinute: false, onError: () => undefined, now });
  const app = appWith(auth);
  const hit = async (key: string, times: number) => {
    for (let i = 0; i < times; i++) expect((await request(app).get('/v1/hello').set('X-API-Key', key)).status).toBe(200);
  };
  await hit(acme1.key, 7);
  await hit(acme2.key, 3);
  await hit(beta.key, 2);
  await hit(gamma.key, 1);
  await auth.close();
});

describe('report --email', () => {
  test('each owner with an address gets its month by SMTP, figures equal to `usage` and `report`, chart inline', async () => {
    const smtp = await startSmtp();
    try {
      const env = { SMTP_URL: smtp.url, SMTP_FROM: 'Usage <usage@api.example>', DAYMIND_PLANS_FILE: plansFile };
      const run = await cliAt(NOW, ['--store', store, 'report', '--email'], env);
      expect(run.stderr).toBe('daymind-keys: no email address (create/set --email) for gamma: no summary sent to them\n');
      expect(run.code).toBe(0);
      expect(run.stdout).toBe('sent\tacme\tops@acme.example\nsent\tbeta\tbeta@beta.example\n');
      expect(smtp.envelopes).toEqual([['ops@acme.example'], ['beta@beta.example']]);

      const usage = JSON.parse((await cliAt(NOW, ['--store', store, '--json', 'usage'])).stdout) as {
        owners: Array<{ owner: string; usage_count: number; requests_today: number }>;
      };
      const report = JSON.parse((await cliAt(NOW, ['--store', store, '--json', 'report'])).stdout) as {
        owners: Array<{ owner: string; units: number }>;
      };
      const month = new Date(NOW).toLocaleString('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });
      for (const [i, owner] of ['acme', 'beta'].entries()) {
        const mail = smtp.received[i]!;
        const u = usage.owners.find((o) => o.owner === owner)!;
        const r = report.owners.find((o) => o.owner === owner)!;
        expect(mail.from?.text).toBe('"Usage" <usage@api.example>');
        expect(mail.subject).toBe(`API usage for ${owner}, ${month}`);
        expect(mail.text).toContain(`Units in ${month}: ${r.units}\n`);
        expect(mail.text).toContain(`Requests, all time: ${u.usage_count}\n`);
        expect(mail.text).toContain(`Requests today: ${u.requests_today}\n`);
        expect(mail.html).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
        expect(mail.html).not.toMatch(/<img|src="http|url\(/);
        expect(mail.attachments).toEqual([]);
      }
      expect(report.owners.find((o) => o.owner === 'acme')!.units).toBe(10);
      // acme's keys: the metered one with its quota left, the prepaid one with its credits left.
      expect(smtp.received[0]!.text).toMatch(/ active +7 +93 of 100 +- +7 +7\n/);
      expect(smtp.received[0]!.text).toMatch(/ active +3 +- +47 +3 +3\n/);
    } finally {
      await smtp.close();
    }
  });

  test('--dry-run DIR writes each message as an .eml file and sends nothing', async () => {
    const out = join(tempDir(), 'mail');
    const run = await cliAt(NOW, ['--store', store, 'report', '--email', '--dry-run', out, '--owner', 'beta']);
    expect(run.code).toBe(0);
    const files = readdirSync(out);
    expect(files).toEqual([`${isoMonth(NOW)}-001-beta.eml`]);
    expect(run.stdout).toBe(`${join(out, files[0]!)}\tbeta@beta.example\n`);
    const mail = await simpleParser(readFileSync(join(out, files[0]!)));
    expect(mail.to).toMatchObject({ text: 'beta@beta.example' });
    expect(mail.text).toContain('Requests, all time: 2\n');
    expect(mail.html).toContain('<svg');
  });

  test.each([
    [{ SMTP_URL: 'http://mail.example.com', SMTP_FROM: 'a@b.example' }, /^daymind-keys: SMTP_URL must be an smtp:\/\/ or smtps:\/\/ URL/],
    [{ SMTP_URL: 'smtp://', SMTP_FROM: 'a@b.example' }, /^daymind-keys: SMTP_URL must be/],
    [{ SMTP_URL: 'smtp://127.0.0.1:25', SMTP_FROM: 'not an address' }, /^daymind-keys: SMTP_FROM must be an email address/],
    [{}, /^daymind-keys: report --email needs SMTP_URL/],
    [{ SMTP_URL: 'smtp://127.0.0.1:25' }, /^daymind-keys: report --email needs SMTP_FROM/],
  ])('bad settings %j: one line on stderr, exit 2, nothing sent', async (env, message) => {
    const run = await cliAt(NOW, ['--store', store, 'report', '--email'], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('--email ADDRESS on create/set is checked; `set --email none` removes it', async () => {
    const bad = await cliAt(NOW, ['--store', store, 'create', 'x', '--email', 'nope']);
    expect([bad.code, bad.stderr]).toEqual([2, 'daymind-keys: --email: "nope" is not an email address (see daymind-keys --help)\n']);
    const shown = JSON.parse((await cliAt(NOW, ['--store', store, '--json', 'list', '--owner', 'beta'])).stdout) as Array<{
      key_prefix: string;
    }>;
    const prefix = shown[0]!.key_prefix;
    expect((await cliAt(NOW, ['--store', store, 'set', prefix, '--email', 'none'])).code).toBe(0);
    const after = JSON.parse((await cliAt(NOW, ['--store', store, '--json', 'show', prefix])).stdout) as { meta: Record<string, unknown> };
    expect(after.meta).toEqual({});
    expect((await cliAt(NOW, ['--store', store, 'set', prefix, '--email', 'beta@beta.example'])).code).toBe(0);
  });
});
