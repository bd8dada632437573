import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MACHINE, isRunning } from './owner';
import type { FileLock } from './lock';

/**
 * Temporary files of atomic writes, and what is left of them by writers that died.
 *
 * A write of `data/api_keys.json` goes to `data/.api_keys.json.<machine>.<pid>.<random>.tmp`,
 * then is renamed over the file. A writer killed in between leaves its temporary file, a whole
 * copy of the file. Such a file is removed (see removeTempFiles) when
 *
 * - it names this machine (see MACHINE) and a pid that no longer runs: its writer is dead;
 * - it names another machine, or none (the names of earlier versions, `.<file>.<pid>.<random>.tmp`),
 *   so its writer cannot be checked from here, and either the remover holds the lock of that very
 *   file (every writer of the file writes under that lock, so none is writing now) or it was
 *   last written more than ABANDONED_MS ago (no write takes that long).
 *
 * The file of a running pid of this machine is kept, however old, and even when its writer lost
 * the lock (stopped for longer than the lock's lease): that writer removes it itself when it
 * finds the lock lost.
 */

/** How old a temporary file whose writer cannot be checked must be to count as abandoned. */
export const ABANDONED_MS = 10 * 60_000;

/** A new temporary file name for a write of `path`, in the same directory. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${MACHINE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

const CURRENT = /^\.(.+)\.([0-9a-f]{12})\.(\d+)\.[0-9a-f]{8}\.tmp$/;
const EARLIER = /^(\d+)\.[0-9a-f]{8}\.tmp$/;

/** What to do with a directory entry: not a temporary file, remove it, keep it, or remove it when abandoned. */
type Verdict = 'other' | 'remove' | 'keep' | 'if-abandoned';

/**
 * The verdict on `name` for a cleaning before a write of `base` (a file of the same directory),
 * by a writer holding the lock that guards `base` or not. Earlier names are only recognised for
 * `base`: the pattern is too loose to judge other files by.
 */
function verdict(name: string, base: string, locked: boolean): Verdict {
  const current = CURRENT.exec(name);
  const of = current ? current[1] : name.startsWith(`.${base}.`) && EARLIER.test(name.slice(base.length + 2)) ? base : undefined;
  if (of === undefined) return 'other';
  if (current && current[2] === MACHINE) return isRunning(Number(current[3])) ? 'keep' : 'remove';
  return locked && of === base ? 'remove' : 'if-abandoned';
}

const abandoned = (stat: fs.Stats | undefined): boolean => stat !== undefined && Date.now() - stat.mtimeMs > ABANDONED_MS;

/**
 * Removes the temporary files of dead writers from the directory of `path` (see above); with
 * `lock`, the lock that guards `path`, also those of `path` itself whose writer cannot be checked.
 * Runs before each atomic write. Best effort: a file that cannot be removed stays, and the write
 * goes on.
 */
export async function removeTempFiles(path: string, lock?: FileLock): Promise<void> {
  const dir = dirname(path);
  const base = basename(path);
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const what = verdict(name, base, lock !== undefined);
    if (what === 'other' || what === 'keep') continue;
    const file = join(dir, name);
    if (what === 'if-abandoned' && !abandoned(await fsp.stat(file).catch(() => undefined))) continue;
    // Never on behalf of a lock that was lost: the next holder's temporary file may be there.
    if (what === 'remove' && lock) lock.assertHeld();
    await fsp.unlink(file).catch(() => undefined);
  }
}

/** removeTempFiles() without a lock, synchronously: at start-up. */
export function removeTempFilesSync(path: string): void {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const what = verdict(name, base, false);
    if (what === 'other' || what === 'keep') continue;
    const file = join(dir, name);
    if (what === 'if-abandoned' && !abandoned(fs.statSync(file, { throwIfNoEntry: false }))) continue;
    try {
      fs.unlinkSync(file);
    } catch {
      // Gone already, or not ours to remove: it stays.
    }
  }
}
