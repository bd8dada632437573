import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, copyFileSync, rmSync } from 'node:fs';
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

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
  const child = spawn(process.execPath, [EXAMPLE_SERVER], { cwd, env: { PATH: process.env.PATH, PORT: '0', ...env } });
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
