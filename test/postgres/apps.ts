import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { childEnv } from '../helpers';

const SERVE = join(__dirname, '../fixtures/serve-env.js');

/** An app server process configured by its environment (test/fixtures/serve-env.js). */
export interface App {
  proc: ChildProcess;
  base: string;
  url: string;
  stderr: () => string;
  /** SIGTERM (which flushes usage); resolves with the exit code. */
  stop(): Promise<number | null>;
}

export async function startApp(env: Record<string, string>): Promise<App> {
  const proc = spawn(process.execPath, [SERVE], { env: childEnv(env) });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const port = await new Promise<string>((resolve, reject) => {
    proc.stdout!.once('data', (d) => resolve(String(d).trim()));
    proc.once('exit', (code) => reject(new Error(`app exited with ${code}: ${err}`)));
  });
  return {
    proc,
    base: `http://127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/hit`,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill('SIGTERM');
      }),
  };
}

/** The status of one request to `app` with `key`. */
export async function hit(app: App, key: string, timeoutMs = 5000): Promise<number> {
  const res = await fetch(app.url, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  return res.status;
}
