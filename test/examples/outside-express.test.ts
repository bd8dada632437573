/**
 * examples/node-http.ts and examples/fastify.ts (auth.verify() through verifyRequest(), outside
 * Express) against the Express example server: each built example runs as a child process on a
 * copy of the same store with the same limits, gets the same requests, and must give the same
 * answers (status, JSON body, WWW-Authenticate, Retry-After, RateLimit-Policy, RateLimit) and
 * count the same usage in the store and the billing ledger once it stopped on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { generateKey, readLedger } from '../../src';
import {
  CLEAR_OF_MIDNIGHT_TIMEOUT_MS,
  childEnv,
  clearOfMidnight,
  monthsBetween,
  SEED_KEYS,
  SEED_STORE,
  tempDir,
  waitFor,
} from '../helpers';
import { transcript, type Answer, type Step } from './transcript';

const EXAMPLES = [
  ['Express (server.ts)', 'server'],
  ['node:http (node-http.ts)', 'node-http'],
  ['Fastify (fastify.ts)', 'fastify'],
] as const;
type Name = (typeof EXAMPLES)[number][0];

const built = (file: string) => resolve(__dirname, `../../build/examples/${file}.js`);

interface Running {
  child: ChildProcess;
  url: string;
  out(): string;
  /** Sends SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts a built example in `cwd` (PORT=0 plus `env`) and waits until it has listed or made its keys. */
async function start(file: string, cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const child = spawn(process.execPath, [built(file)], { cwd, env: childEnv({ PORT: '0', ...env }) });
  let out = '';
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await waitFor(() => /Create another key/.test(out) || child.exitCode !== null, 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  if (child.exitCode !== null) throw new Error(`${file} exited at start-up:\n${out}`);
  return {
    child,
    url: /listening on (http:\/\/localhost:\d+)/.exec(out)![1]!,
    out: () => out,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

const UNKNOWN_KEY = generateKey(); // well formed, checksum and all, in no store
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const apiKey = (key: string) => ({ 'x-api-key': key });

/** Per key 3 a minute, per client address 12 a minute: the 13th request is refused by the address. */
const LIMITS = { API_RATE_LIMIT_PER_MINUTE: '3', IP_RATE_LIMIT_PER_MINUTE: '12' };

const STEPS: Step[] = [
  { path: '/v1/hello' },
  { path: '/v1/hello', headers: apiKey('x'.repeat(300)) },
  { path: '/v1/hello', headers: bearer(UNKNOWN_KEY) },
  { path: '/v1/hello', headers: bearer(SEED_KEYS.revoked) },
  { path: '/v1/hello', headers: bearer(SEED_KEYS.alpha) },
  { path: '/v1/nope', headers: bearer(SEED_KEYS.alpha) },
  { path: '/v1/hello', headers: apiKey(SEED_KEYS.alpha) },
  { path: '/v1/hello', headers: bearer(SEED_KEYS.alpha) },
  { path: '/v1/usage', headers: apiKey(SEED_KEYS.alpha) },
  { path: '/v1/hello', headers: { authorization: `bearer ${SEED_KEYS.beta}` } },
  { path: '/v1/hello', headers: bearer(SEED_KEYS.beta) },
  { path: '/v1/usage', headers: bearer(SEED_KEYS.beta) },
  { path: '/v1/hello', headers: bearer(SEED_KEYS.beta) },
  { path: '/v1/hello' },
];

const JSON_TYPE = 'application/json; charset=utf-8';
const IP_ONLY = '"ip";q=12;w=60';
const IP_AND_KEY = '"ip";q=12;w=60, "key";q=3;w=60';

/** Status, error code (or body), the header fields that matter, per step: asserted of each server alike. */
function expectTranscript(answers: Answer[], today: number): void {
  const refusal = (status: number, code: string, ip: number, key: number | null, extra: Record<string, unknown> = {}) => ({
    status,
    body: { error: expect.objectContaining({ code, message: expect.any(String) }) },
    headers: {
      'content-type': JSON_TYPE,
      'cache-control': 'no-store',
      'ratelimit-policy': key === null ? IP_ONLY : IP_AND_KEY,
      ratelimit: key === null ? `"ip";r=${ip};t=*` : `"ip";r=${ip};t=*, "key";r=${key};t=*`,
      ...extra,
    },
  });
  const unauthorized = (code: string, ip: number, challenge: string) =>
    refusal(401, code, ip, null, { 'www-authenticate': challenge, 'retry-after': null });
  const invalidToken = expect.stringMatching(/^Bearer error="invalid_token", error_description="[^"]+"$/);
  const allowed = (ip: number, key: number, body: unknown) => ({
    status: 200,
    body,
    headers: {
      'content-type': JSON_TYPE,
      'cache-control': null as string | null,
      'www-authenticate': null,
      'retry-after': null,
      'ratelimit-policy': IP_AND_KEY,
      ratelimit: `"ip";r=${ip};t=*, "key";r=${key};t=*`,
    },
  });
  const noStore = (answer: ReturnType<typeof allowed>) => ({ ...answer, headers: { ...answer.headers, 'cache-control': 'no-store' } });
  const usage = (owner: string, count: number, requestsToday: number, remaining: number) => ({
    owner,
    usage_count: count,
    requests_today: requestsToday,
    requests_day: today,
    requests_this_month: requestsToday,
    last_used: '<time>',
    rate_limits: [{ policy: 'key', limit: 3, remaining, reset_seconds: '<seconds>', window_seconds: 60 }],
  });
  const limited = (ip: number, key: number | null, policy: string) => {
    const answer = refusal(429, 'rate_limited', ip, key, { 'www-authenticate': null, 'retry-after': '<seconds>' });
    return { ...answer, body: { error: expect.objectContaining({ code: 'rate_limited', policy }) } };
  };
  expect(answers).toMatchObject([
    unauthorized('missing_api_key', 11, 'Bearer'),
    unauthorized('malformed_api_key', 10, invalidToken),
    unauthorized('invalid_api_key', 9, invalidToken),
    unauthorized('revoked_api_key', 8, invalidToken),
    allowed(7, 2, { message: 'Hello, team-alpha!', key: 'dm_8fJq2L' }),
    {
      status: 404,
      body: { error: { code: 'not_found' } },
      headers: { 'ratelimit-policy': IP_AND_KEY, ratelimit: '"ip";r=6;t=*, "key";r=1;t=*' },
    },
    allowed(5, 0, { message: 'Hello, team-alpha!', key: 'dm_8fJq2L' }),
    limited(4, 0, 'key'),
    // Rate-limited, the key still gets its usage (200), which spends nothing of its window.
    noStore(allowed(3, 0, usage('team-alpha', 1248, 3, 0))),
    allowed(2, 2, { message: 'Hello, team-beta!', key: 'dm_Qm3Wv9' }),
    allowed(1, 1, { message: 'Hello, team-beta!', key: 'dm_Qm3Wv9' }),
    noStore(allowed(0, 1, usage('team-beta', 2, 2, 1))),
    limited(0, null, 'ip'),
    limited(0, null, 'ip'),
  ]);
  // The client address's refusal is the middleware's: the "ip" policy alone, no key checked.
  expect(answers[12]!.body).toEqual({
    error: {
      code: 'rate_limited',
      message: 'Rate limit of 12 requests per minute exceeded for this client address; retry in <wait>.',
      policy: 'ip',
    },
  });
}

/** The store's counters per owner, read from the file after the server stopped. */
function counters(storePath: string): Record<string, unknown> {
  const records = JSON.parse(readFileSync(storePath, 'utf8')) as Array<Record<string, unknown>>;
  return Object.fromEntries(
    records.map((r) => [
      r.owner,
      { usage_count: r.usage_count, requests_today: r.requests_today, requests_day: r.requests_day, revoked: r.revoked },
    ]),
  );
}

/** Units billed per owner in the local ledger beside the store. */
async function billed(dir: string, since: number): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  for (const entry of await readLedger(dir, monthsBetween(since, Date.now())))
    totals[entry.owner] = (totals[entry.owner] ?? 0) + entry.quantity;
  return totals;
}

describe('outside Express: node:http and Fastify examples answer and count as the Express middleware', () => {
  let started = 0;
  let today = 0;
  beforeAll(async () => {
    // requests_today and the ledger are the servers' real UTC day and month: all runs must share one.
    await clearOfMidnight(90_000);
    started = Date.now();
    const d = new Date(started);
    today = d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
  }, CLEAR_OF_MIDNIGHT_TIMEOUT_MS);

  const answers = new Map<Name, Answer[]>();
  const stores = new Map<Name, Record<string, unknown>>();

  test.each(EXAMPLES)('%s: keys, limits, headers and usage on the seed store', async (name, file) => {
    const cwd = tempDir();
    const storePath = join(cwd, 'api_keys.json');
    copyFileSync(SEED_STORE, storePath);
    const server = await start(file, cwd, { API_KEY_STORE_PATH: storePath, ...LIMITS });
    let code: number | null;
    try {
      answers.set(name, await transcript(server.url, STEPS));
    } finally {
      code = await server.stop();
    }
    expect(code).toBe(0);
    expect(server.out()).toContain('usage flushed');
    expectTranscript(answers.get(name)!, today);

    // Counted: alpha's two hellos and 404; beta's two hellos. Refusals and /v1/usage are not usage.
    const counted = counters(storePath);
    expect(counted).toEqual({
      'team-alpha': { usage_count: 1248, requests_today: 3, requests_day: today, revoked: false },
      'team-beta': { usage_count: 2, requests_today: 2, requests_day: today, revoked: false },
      'old-integration': { usage_count: 98765, requests_today: 0, requests_day: 20231114, revoked: true },
    });
    stores.set(name, counted);
    expect(await billed(cwd, started)).toEqual({ 'team-alpha': 3, 'team-beta': 2 });
  });

  test('node:http and Fastify give exactly the answers Express gave', () => {
    const express = answers.get('Express (server.ts)');
    expect(express).toHaveLength(STEPS.length);
    expect(answers.get('node:http (node-http.ts)')).toEqual(express);
    expect(answers.get('Fastify (fastify.ts)')).toEqual(express);
    expect(stores.get('node:http (node-http.ts)')).toEqual(stores.get('Express (server.ts)'));
    expect(stores.get('Fastify (fastify.ts)')).toEqual(stores.get('Express (server.ts)'));
  });

  test.each(EXAMPLES)('%s: on an empty store prints a working demo key; SIGTERM flushes its usage', async (_name, file) => {
    const cwd = tempDir();
    const server = await start(file, cwd);
    let code: number | null;
    const key = /\b(dm_[0-9A-Za-z]{28})\b/.exec(server.out())![1]!;
    try {
      const hello = await fetch(`${server.url}/v1/hello`, { headers: bearer(key) });
      expect([hello.status, await hello.json()]).toEqual([200, { message: 'Hello, demo!', key: key.slice(0, 9) }]);
      const usage = await fetch(`${server.url}/v1/usage`, { headers: apiKey(key) });
      expect(await usage.json()).toMatchObject({ owner: 'demo', usage_count: 1, requests_today: 1 }); // not usage itself
    } finally {
      code = await server.stop();
    }
    expect(code).toBe(0);
    const [record] = JSON.parse(readFileSync(join(cwd, 'data', 'api_keys.json'), 'utf8')) as Array<Record<string, unknown>>;
    expect(record).toMatchObject({ owner: 'demo', usage_count: 1, requests_today: 1 });
    expect(await billed(join(cwd, 'data'), started)).toEqual({ demo: 1 });
  });

  test.each(EXAMPLES.slice(1))('%s: a port in use is one line on stderr and exit 1', async (_name, file) => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, r));
    try {
      const port = (taken.address() as AddressInfo).port;
      const child = spawn(process.execPath, [built(file)], { cwd: tempDir(), env: childEnv({ PORT: String(port) }) });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      expect([code, err]).toEqual([1, `port ${port} is already in use (set PORT to use another)\n`]);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});
