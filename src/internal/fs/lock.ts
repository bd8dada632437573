import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
// Node's own, not the globals: fake timers in a user's tests must not stop a refresh or a wait.
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { MACHINE, isPid, isRunning } from './owner';
import { describeError } from '../../errors';

/**
 * The cross-process lock on a file: `<path>.lock`, a symbolic link created exclusively whose
 * target names the holder, `<pid>@<machine>.<token>` (see MACHINE; the token tells one holding
 * from the next), with its modification time refreshed while held. A symbolic link holds its
 * target in the inode, so taking the lock writes no data: it works on a full disk. (A file system
 * without symbolic links gets a small file with the same text.)
 *
 * A lock left by a process that died is taken over:
 * - at once when its holder ran on this machine and its pid no longer runs (a killed CLI or
 *   server): the next writer gets the lock at its next try, within 0.2 s;
 * - otherwise once it has not been refreshed for STALE_MS: a holder in another container (its
 *   pids are not ours to check), or one that is stopped or frozen (SIGSTOP, a suspended VM).
 *
 * A holder refreshes the lock every REFRESH_MS and counts it as held only while its last refresh
 * is under HOLD_MS old (STALE_MS minus a margin), and while the link is still its own. Past that
 * the lock is lost for good: assertHeld(), called right before each change to the files the lock
 * guards, then throws LockLost, and the caller starts its work again under a new lock. So a
 * holder stopped for longer than STALE_MS and then continued finds its lock lost and writes
 * nothing: the process that took the lock over meanwhile is the only writer.
 *
 * What remains: a holder frozen for more than the margin (STALE_MS - HOLD_MS) between its last
 * check and the system call of its change. The check runs synchronously right before that call,
 * so the window is a few microseconds for a rename.
 *
 * A directory at `<path>.lock` is the lock of another program using proper-lockfile on the same
 * path: it is waited for, and taken over only after FOREIGN_STALE_MS without refresh, as
 * proper-lockfile's own default does. Such a program waits for our lock in turn (it cannot see
 * its time, and so never takes it over); one left by a killed process is removed by the next
 * daymind-auth writer.
 */

/** How often a held lock's modification time is refreshed. */
export const REFRESH_MS = 500;
/** How long after its last refresh a holder still counts its lock as held. */
export const HOLD_MS = 1_500;
/** How long without refresh before a lock whose holder cannot be checked is taken over. */
export const STALE_MS = 2_000;
/** The same for a lock directory of another program (proper-lockfile's default stale time). */
export const FOREIGN_STALE_MS = 10_000;
/** How long acquireLock() waits for another holder by default. */
export const LOCK_WAIT_MS = 20_000;

/** Thrown by assertHeld() when the lock is no longer this process's; nothing was changed after. */
export class LockLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockLost';
  }
}

/**
 * The locks this process holds, by lock path. A lock naming our own pid that is not in here was
 * left by an earlier process that had the same pid.
 */
const heldHere = new Map<string, FileLock>();

export class FileLock {
  private lostBecause: string | undefined;
  private released = false;
  /** Until when (Date.now()) the lock counts as held without another refresh. */
  private heldUntil: number;
  private readonly timer: NodeJS.Timeout;

  /** Takes a lock just created at `path`, whose target (or content) is `owner`. */
  constructor(
    readonly path: string,
    private readonly owner: string,
    refreshedAt: number,
  ) {
    this.heldUntil = refreshedAt + HOLD_MS;
    heldHere.set(path, this);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    // A held lock does not keep the process alive; an exit while holding it leaves a lock that
    // names a pid that no longer runs, which the next writer removes.
    this.timer.unref();
  }

  /** Whether the lock is still this process's: refreshed in time, and the lock still its own. */
  held(): boolean {
    if (this.lostBecause !== undefined || this.released) return false;
    if (Date.now() > this.heldUntil) return this.lose(`not refreshed for ${HOLD_MS} ms (the process was held up)`);
    return ownerAt(this.path) === this.owner || this.lose(`${this.path} was taken over or removed`);
  }

  /** Throws LockLost unless held(): called right before each change to what the lock guards. */
  assertHeld(): void {
    if (!this.held()) throw new LockLost(`lost the lock ${this.path}: ${this.lostBecause ?? 'released'}`);
  }

  /** Lets go of the lock: removes it if it is still ours. */
  async release(): Promise<void> {
    if (this.released) return;
    // Checked and removed back to back: nobody takes over a lock that is held.
    if (this.held()) fs.rmSync(this.path, { force: true });
    this.released = true;
    this.stop();
  }

  private refresh(): void {
    if (!this.held()) return;
    const now = Date.now();
    try {
      setTime(this.path, now);
      this.heldUntil = now + HOLD_MS;
    } catch {
      // Not refreshed: the lock is lost if the next tries fail too.
    }
  }

  private lose(reason: string): false {
    this.lostBecause ??= reason;
    this.stop();
    return false;
  }

  private stop(): void {
    clearInterval(this.timer);
    if (heldHere.get(this.path) === this) heldHere.delete(this.path);
  }
}

/**
 * Sets the lock's modification time to `now`, rounded up to the second: a file system that keeps
 * whole seconds must not make the lock look older than it is to another process.
 */
function setTime(lockPath: string, now: number): void {
  const stamp = Math.ceil(now / 1000);
  fs.lutimesSync(lockPath, stamp, stamp);
}

/** The target of the lock at `lockPath` (the content of a plain file); undefined when there is none. */
function ownerAt(lockPath: string): string | undefined {
  try {
    return fs.readlinkSync(lockPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'UNKNOWN') return undefined;
  }
  try {
    return fs.readFileSync(lockPath, 'utf8'); // not a link: a plain file
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Takes the lock on `path` (`<path>.lock`), waiting for another holder up to `waitMs` (default
 * about 20 s; 0: one try). Throws an error with code ELOCKED, naming the holder, when it is still
 * held then.
 */
export async function acquireLock(path: string, waitMs = LOCK_WAIT_MS): Promise<FileLock> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  let delay = 5;
  for (;;) {
    const lock = tryCreate(lockPath);
    if (lock) return lock;
    const holder = inspect(lockPath);
    if (holder.stale) {
      removeStale(lockPath, holder);
      continue;
    }
    if (holder.gone) continue;
    const left = deadline - Date.now();
    if (left <= 0) {
      throw Object.assign(new Error(`${lockPath} is held by ${holder.description}`), { code: 'ELOCKED', path: lockPath });
    }
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 1.3, 200);
  }
}

/** Symbolic links refused by the file system (or, on Windows, without the right to make them). */
const NO_LINKS = new Set(['EPERM', 'EOPNOTSUPP', 'ENOTSUP', 'ENOSYS', 'EINVAL']);

function tryCreate(lockPath: string): FileLock | undefined {
  const owner = `${process.pid}@${MACHINE}.${randomBytes(4).toString('hex')}`;
  try {
    fs.symlinkSync(owner, lockPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') return undefined;
    if (!NO_LINKS.has(code)) throw err;
    try {
      fs.writeFileSync(lockPath, owner, { flag: 'wx', mode: 0o600 });
    } catch (fileErr) {
      if ((fileErr as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      fs.rmSync(lockPath, { force: true });
      throw fileErr;
    }
  }
  const now = Date.now();
  try {
    setTime(lockPath, now);
  } catch {
    // Its time is that of its creation, now.
  }
  return new FileLock(lockPath, owner, now);
}

/** Who holds a lock and whether it may be taken over; `owner` and `ino` identify the very lock judged. */
interface Holder {
  gone?: boolean;
  description: string;
  stale: boolean;
  directory?: boolean;
  owner?: string;
  ino?: number;
}

function inspect(lockPath: string): Holder {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(lockPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { gone: true, description: '', stale: false };
    throw err;
  }
  const age = Date.now() - stat.mtimeMs;
  if (stat.isDirectory()) {
    return { description: 'another program (a lock directory)', stale: age > FOREIGN_STALE_MS, directory: true, ino: stat.ino };
  }
  const owner = ownerAt(lockPath);
  const parsed = /^(\d+)@([0-9a-f]{12})\.[0-9a-f]+$/.exec(owner ?? '');
  const pid = Number(parsed?.[1]);
  if (!parsed || !isPid(pid)) return { description: 'an unknown process', stale: age > STALE_MS, owner, ino: stat.ino };
  const here = parsed[2] === MACHINE;
  let description = `process ${pid} on ${here ? 'this machine' : 'another machine'}`;
  const dead = here && (pid === process.pid ? !heldHere.has(lockPath) : !isRunning(pid));
  if (dead) description += ', which no longer runs';
  return { description, stale: dead || age > STALE_MS, owner, ino: stat.ino };
}

/**
 * Removes a stale lock, only if the lock at the path is still the one judged (the same target,
 * token included; the same inode). A lock created by another process in the microseconds between
 * this check and the removal is removed too: that process finds its lock gone at its next check
 * (assertHeld) and writes nothing.
 */
function removeStale(lockPath: string, holder: Holder): void {
  try {
    if (fs.lstatSync(lockPath).ino !== holder.ino) return;
    if (holder.directory) {
      fs.rmdirSync(lockPath);
      return;
    }
    if (ownerAt(lockPath) === holder.owner) fs.unlinkSync(lockPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Runs `run` under the lock of `path`; again from the lock when the lock was lost before `run`
 * wrote (the process was held up past the lock's lease), up to three times. A failure is thrown
 * naming `what` and the file: a full disk's ENOSPC alone does not say which file.
 */
export async function underLock<T>(path: string, what: string, run: (lock: FileLock) => Promise<T>): Promise<T> {
  try {
    for (let attempt = 1; ; attempt++) {
      const lock = await acquireLock(path);
      try {
        return await run(lock);
      } catch (err) {
        if (!(err instanceof LockLost) || attempt === 3) throw err;
      } finally {
        await lock.release();
      }
    }
  } catch (err) {
    throw new Error(`cannot write ${what} ${path}: ${describeError(err)}`, { cause: err });
  }
}
