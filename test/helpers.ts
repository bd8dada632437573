import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import express from 'express';
import type { DaymindAuth } from '../src';

export const SEED_STORE = resolve(__dirname, 'fixtures/api_keys.seed-format.json');
export const SEED_KEYS = {
  alpha: 'dm_8fJq2LrXc0VnT4sYwPzA7kHd',
  beta: 'dm_Qm3Wv9EoBb6Ns1XgUu5Rt8Ky',
  revoked: 'dm_Zz0Hh4Ll7Cc2Aa9Pp5Ee1Oo3',
};

/**
 * The instant the suite's injected clocks start from: `DAYMIND_TEST_NOW` (an ISO 8601 time), so
 * that the suite can be run at a month's, a year's or a leap day's end (`npm run test:calendar`);
 * by default the middle of a month, far from any boundary.
 */
export const TEST_NOW = ((): number => {
  const text = process.env.DAYMIND_TEST_NOW;
  if (!text) return Date.UTC(2026, 5, 15, 12);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Error(`DAYMIND_TEST_NOW: "${text}" is not an ISO 8601 time`);
  return ms;
})();

export interface TestClock {
  /** For the `now` option: the clock's time, in ms. */
  now: () => number;
  /** Moves the clock by `ms`. */
  advance(ms: number): void;
  /** Sets the clock to `ms`. */
  set(ms: number): void;
}

/** A clock for the `now` option that stands still at `start` (TEST_NOW) until moved. */
export function testClock(start = TEST_NOW): TestClock {
  let at = start;
  return { now: () => at, advance: (ms) => (at += ms), set: (ms) => (at = ms) };
}

/** `YYYY-MM` (UTC) of a time in ms. */
export const isoMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/** Every `YYYY-MM` (UTC) from the month of `fromMs` to that of `toMs`: what a run between the two may have written to. */
export function monthsBetween(fromMs: number, toMs: number): string[] {
  const months = [isoMonth(fromMs)];
  while (months[months.length - 1] !== isoMonth(toMs)) {
    const [y, m] = months[months.length - 1]!.split('-').map(Number) as [number, number];
    months.push(isoMonth(Date.UTC(y, m, 1)));
  }
  return months;
}

/**
 * The environment of a child process: PATH, then `env`. A run under libfaketime (the calendar runs)
 * passes its variables on, so that children live on the same clock as the test.
 */
export function childEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const clock: NodeJS.ProcessEnv = {};
  for (const name of ['LD_PRELOAD', 'FAKETIME', 'DONT_FAKE_MONOTONIC', 'FAKETIME_DONT_RESET']) {
    if (process.env[name] !== undefined) clock[name] = process.env[name];
  }
  return { PATH: process.env.PATH, ...clock, ...env };
}

/**
 * This process's environment without the calendar runs' libfaketime, for programs that do not
 * work under it (Chromium starts in a minute, redis-server does not start) and read no date the
 * tests check.
 */
export function realClockEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['LD_PRELOAD', 'FAKETIME', 'DONT_FAKE_MONOTONIC']) delete env[name];
  return env;
}

/**
 * Launch options for Debian's Chromium through playwright-core. The browser never gets the
 * calendar runs' libfaketime: Chromium under it takes about a minute to start, and no page test
 * depends on the browser's clock.
 */
export function chromiumOptions(): { executablePath: string; args: string[]; env: NodeJS.ProcessEnv } {
  const env = realClockEnv();
  const args = [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-gpu',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ];
  return { executablePath: '/usr/bin/chromium', args, env };
}

const dirs: string[] = [];

/** A fresh temp directory, removed after the test file. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'daymind-test-'));
  dirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the existing-format sample store in a temp dir. */
export function seedStoreCopy(): string {
  const path = join(tempDir(), 'api_keys.json');
  copyFileSync(SEED_STORE, path);
  return path;
}

/** An app with the middleware on /v1, a protected /v1/hello and the usage router. */
export function appWith(auth: DaymindAuth): express.Express {
  const app = express();
  app.use('/v1', auth, auth.usageRouter());
  app.get('/v1/hello', (req, res) => {
    res.json({ owner: req.daymind!.owner, prefix: req.daymind!.keyPrefix });
  });
  return app;
}

/** An app with the usage page: the usage router with `{ dashboard: true }` and the middleware on /v1, and GET /v1/hello. */
export function pageApp(auth: DaymindAuth): express.Express {
  const app = express();
  app.use('/v1', auth.usageRouter({ dashboard: true }));
  app.use('/v1', auth);
  app.get('/v1/hello', (_req, res) => void res.json({ hello: true }));
  return app;
}

/** Serves `app` on a free port of 127.0.0.1; `close()` ends its open connections, then the server. */
export async function listen(app: express.Express): Promise<{ base: string; close(): Promise<void> }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long a file that checks `clearOfMidnight()` may have to wait, plus its own set-up: a beforeAll timeout. */
export const CLEAR_OF_MIDNIGHT_TIMEOUT_MS = 120_000;

/**
 * For test files whose child processes read the real clock (the example server, workers) and whose
 * checks need one UTC day, and so one month, from set-up to the last check: when the next UTC
 * midnight is less than `needMs` away, waits until it has passed. Call it first in beforeAll, then
 * take the day once (`Date.now()` after it) for every check.
 */
export async function clearOfMidnight(needMs = 60_000): Promise<void> {
  const left = 86_400_000 - (Date.now() % 86_400_000);
  if (left < needMs) await sleep(left + 200);
}

/**
 * Closes each of `open` (emptying it), one after the other, then throws what failed: a final
 * flush or delivery that fails in an afterEach fails the test that made the instance. Every
 * instance is closed even when one fails, so that none keeps the test process alive.
 */
export async function closeAll(open: Array<{ close(): Promise<void> }>): Promise<void> {
  const failures: unknown[] = [];
  for (const item of open.splice(0)) {
    try {
      await item.close();
    } catch (err) {
      failures.push(err);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `${failures.length} close() calls failed`);
}

/**
 * The least whole seconds to its reset that a window of `seconds` can show now, when it began
 * at or after `since` (ms, taken before the request that began it): the wall clock moves while
 * a test runs, so a window of 60 may show 59 (or less on a slow machine), never more than 60.
 */
export function leastSecondsLeft(seconds: number, since: number): number {
  return Math.max(0, Math.ceil((seconds * 1000 - (Date.now() - since)) / 1000));
}

/**
 * Checks a RateLimit field against `expected` (e.g. `"ip";r=1;t=60, "key";r=118;t=60`): the names
 * and `r` exactly, and each `t` from {@link leastSecondsLeft} of the expected value up to that value,
 * for windows that began at or after `since`. On a mismatch the field is shown as it came.
 */
export function expectRateLimitField(field: string | undefined, expected: string, since: number): void {
  const wanted = [...expected.matchAll(/;t=(\d+)/g)].map((m) => Number(m[1]));
  let i = 0;
  const normalized = field?.replace(/;t=(\d+)/g, (text, t: string) => {
    const most = wanted[i++];
    if (most === undefined) return text;
    return Number(t) <= most && Number(t) >= leastSecondsLeft(most, since) ? `;t=${most}` : text;
  });
  expect(normalized).toBe(expected);
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the elapsed ms or throws. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

/** The built example server (`npm run pretest` builds it). */
export const EXAMPLE_SERVER = resolve(__dirname, '../build/examples/server.js');

export interface ExampleServer {
  child: ChildProcess;
  /** `http://localhost:PORT`. */
  url: string;
  /** What it printed so far (stdout and stderr). */
  out(): string;
  /** Resolves with its exit code. */
  exited: Promise<number | null>;
}

/**
 * Starts the example server in `cwd` (PATH and PORT=0 plus `env`) and waits until it listens. A
 * server that exits or does not start within 10 s is killed and the call throws with its output.
 */
export async function startExampleServer(cwd: string, env: NodeJS.ProcessEnv = {}): Promise<ExampleServer> {
  const child = spawn(process.execPath, [EXAMPLE_SERVER], { cwd, env: childEnv({ PORT: '0', ...env }) });
  let out = '';
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await waitFor(() => /Create another key/.test(out) || child.exitCode !== null, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  if (child.exitCode !== null) throw new Error(`the example server exited at start-up:\n${out}`);
  return { child, url: /listening on (http:\/\/localhost:\d+)/.exec(out)![1]!, out: () => out, exited };
}

/** Calls `sample` at every turn of the event loop while `work` runs; returns the samples (one a turn). */
export async function everyTurn<T, R>(sample: () => T, work: () => Promise<R>): Promise<{ seen: T[]; result: R }> {
  const seen: T[] = [];
  let running = true;
  const tick = (): void => {
    seen.push(sample());
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { seen, result: await work() };
  } finally {
    running = false;
  }
}
