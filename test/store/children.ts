import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { childEnv, sleep, waitFor } from '../helpers';

// Child processes that write a store and are killed (SIGKILL) or frozen (SIGSTOP) while they do:
// the writers of the crash and lock tests.

export const fixture = (name: string): string => resolve(__dirname, '../fixtures', name);

export interface Child {
  process: ChildProcess;
  pid: number;
  out(): string;
  err(): string;
  /** Resolves with the exit code once the child is reaped (its pid no longer runs). */
  exited: Promise<number | null>;
}

const running: ChildProcess[] = [];

/** Runs `node script ...args` with only PATH in its environment; killed after the test if still there. */
export function startNode(script: string, args: string[]): Child {
  const child = spawn(process.execPath, [script, ...args], { env: childEnv() });
  running.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { process: child, pid: child.pid!, out: () => out, err: () => err, exited };
}

afterEach(() => {
  for (const child of running.splice(0)) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
});

/** SIGKILLs the child and waits until it is reaped. */
export async function killNow(child: Child): Promise<void> {
  child.process.kill('SIGKILL');
  await child.exited;
}

/** The names of the temporary files in `dir` written by process `pid` (see src/internal/fs/temp-files.ts). */
export function tempFilesOf(dir: string, pid?: number): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.tmp') && (pid === undefined || name.includes(`.${pid}.`)));
}

/**
 * Stops the child (SIGSTOP) as soon as `midWrite()` holds, and makes sure it still holds once
 * the child is stopped (else lets it go on and tries again): the child is then frozen in the
 * middle of that write. Throws when the child exits first.
 */
export async function freezeWhen(child: Child, midWrite: () => boolean): Promise<void> {
  for (;;) {
    await waitFor(() => midWrite() || child.process.exitCode !== null, 60_000, 1);
    if (child.process.exitCode !== null) throw new Error(`process ${child.pid} finished before it could be frozen mid-write`);
    child.process.kill('SIGSTOP');
    await sleep(50);
    if (midWrite()) return;
    child.process.kill('SIGCONT');
  }
}

/**
 * Writes a store of `n` keys at `path`, as the library writes them (one record a line): 20,000
 * keys make about 4.7 MB, a write a kill can land in. Returns the first key's hash.
 */
export function storeOfKeys(path: string, n: number): string {
  const hashes = Array.from({ length: n }, (_, i) => createHash('sha256').update(`key ${i}`).digest('hex'));
  const records = hashes.map((hash, i) =>
    JSON.stringify({
      owner: `owner ${i}`,
      created_at: 1795550000,
      usage_count: 0,
      requests_today: 0,
      requests_day: 0,
      last_used: null,
      revoked: false,
      key_hash: hash,
      key_prefix: `dm_${hash.slice(0, 6)}`,
    }),
  );
  writeFileSync(path, `[\n  ${records.join(',\n  ')}\n]\n`, { mode: 0o600 });
  return hashes[0]!;
}
