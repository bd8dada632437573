import { mkdir, readdir, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { StoreError, describeError } from '../errors';
import { closeOpenFile, readVersion, signatureIfAny, writeAtomic, type FileVersion } from '../internal/fs/file-io';
import { LockLost, acquireLock, type FileLock } from '../internal/fs/lock';
import { parseChunksInSlices } from './json-chunks';
import { SLICE_BUDGET_MS, WorkSlicer } from '../internal/slicer';
import { HISTORY_RETENTION_DAYS, dayOffset, isoDay, type DayCounts, type HistoryEntry, type UsageHistory } from './history';

/** Counts of one day: key hash -> [allowed, rate_limited]. */
type DayFile = Map<string, [number, number]>;

/** Parsed day files kept in memory for reads, at most this many entries in all. */
const MAX_CACHED_ENTRIES = 1_000_000;
/** Lines joined into one part of the written file. */
const SLICE = 5_000;
/** How many times a day's write starts again after losing the lock before it gives up. */
const LOCK_LOST_ATTEMPTS = 3;

/** `data/api_keys.json` -> `data/api_keys.history`: where the day files of a store go. */
export function historyDirFor(storePath: string): string {
  return join(dirname(storePath), `${basename(storePath, extname(storePath))}.history`);
}

export interface FileUsageHistoryOptions {
  /** The directory of the day files. */
  dir: string;
  /** The clock, ms (retention). Default Date.now. */
  now?: () => number;
}

/**
 * History in one small JSON file per UTC day (`YYYY-MM-DD.json`: `{ "<key hash>": [allowed,
 * rate_limited], ... }`, one key a line) in a directory beside the key store. A flush only
 * rewrites today's file (under its lock, see lock.ts: re-read and added to, atomically
 * replaced), so its cost follows the keys used today, not the store's size; files older than the
 * retention period are deleted. A file that cannot be parsed is reported and never overwritten.
 */
export class FileUsageHistory implements UsageHistory {
  readonly dir: string;
  private readonly now: () => number;
  /** Day files as last read or written, with the signature of that version; oldest use first. */
  private readonly cache = new Map<number, { signature: string; counts: DayFile }>();
  private cachedEntries = 0;
  private prunedBefore = 0;
  /** How long a flush's or a re-read's work runs before it yields to the event loop, in ms (tests set 0: a turn after each step). */
  sliceBudgetMs = SLICE_BUDGET_MS;

  constructor(options: FileUsageHistoryOptions) {
    this.dir = options.dir;
    this.now = options.now ?? Date.now;
  }

  pathOf(day: number): string {
    return join(this.dir, `${isoDay(day)}.json`);
  }

  /**
   * Adds counts to their day files. A flush of many keys brings a count per key, so the work on
   * the event loop is cut into slices (WorkSlicer). The recorder reads the history only between
   * writes (UsageRecorder.readHistory), so a day's counts are never read half merged.
   */
  async add(entries: HistoryEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const slicer = new WorkSlicer(this.sliceBudgetMs);
    const byDay = new Map<number, HistoryEntry[]>();
    for (const entry of entries) {
      const list = byDay.get(entry.day);
      if (list) list.push(entry);
      else byDay.set(entry.day, [entry]);
      if (slicer.due()) await slicer.yield();
    }
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreError(
        'ERR_DAYMIND_STORE_WRITE',
        this.dir,
        `cannot create the usage history directory ${this.dir}: ${describeError(err)}`,
        {
          cause: err,
        },
      );
    }
    for (const day of [...byDay.keys()].sort()) await this.addToDay(day, byDay.get(day)!, slicer);
    await this.prune();
  }

  /**
   * Adds the entries to the day's file under its lock; started again from the lock when the lock
   * was lost before the write (the process was held up past the lock's lease: see lock.ts).
   */
  private async addToDay(day: number, entries: HistoryEntry[], slicer: WorkSlicer): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.addToDayLocked(day, entries, slicer);
      } catch (err) {
        if (!(err instanceof LockLost)) throw err;
        if (attempt === LOCK_LOST_ATTEMPTS) {
          const path = this.pathOf(day);
          throw new StoreError('ERR_DAYMIND_STORE_LOCK', path, `${err.message}; nothing was written, ${attempt} times: giving up`, {
            cause: err,
          });
        }
      }
    }
  }

  private async addToDayLocked(day: number, entries: HistoryEntry[], slicer: WorkSlicer): Promise<void> {
    const path = this.pathOf(day);
    let lock: FileLock;
    try {
      lock = await acquireLock(path);
    } catch (err) {
      throw new StoreError('ERR_DAYMIND_STORE_LOCK', path, `cannot lock the usage history file ${path}: ${describeError(err)}`, {
        cause: err,
      });
    }
    try {
      const counts = await this.load(day, slicer);
      for (const entry of entries) {
        const current = counts.get(entry.key_hash);
        if (current) {
          current[0] += entry.allowed;
          current[1] += entry.rate_limited;
        } else {
          counts.set(entry.key_hash, [entry.allowed, entry.rate_limited]);
          this.cachedEntries++;
        }
        if (slicer.due()) await slicer.yield();
      }
      let signature: string;
      try {
        signature = await writeAtomic(path, await serialize(counts), lock);
      } catch (err) {
        // The counts were added to the cached day in place: read from the file next time.
        this.forget(day);
        if (err instanceof LockLost) throw err;
        throw new StoreError('ERR_DAYMIND_STORE_WRITE', path, `cannot write the usage history file ${path}: ${describeError(err)}`, {
          cause: err,
        });
      }
      this.remember(day, signature, counts);
    } finally {
      await lock.release();
    }
  }

  async read(keyHash: string, days: readonly number[]): Promise<DayCounts[]> {
    const result: DayCounts[] = [];
    for (const day of days) {
      const counts = (await this.load(day)).get(keyHash);
      result.push({ allowed: counts?.[0] ?? 0, rate_limited: counts?.[1] ?? 0 });
    }
    return result;
  }

  async readDays(days: readonly number[]): Promise<Map<number, Map<string, DayCounts>>> {
    const result = new Map<number, Map<string, DayCounts>>();
    for (const day of days) {
      const byKey = new Map<string, DayCounts>();
      for (const [hash, [allowed, rateLimited]] of await this.load(day)) byKey.set(hash, { allowed, rate_limited: rateLimited });
      result.set(day, byKey);
    }
    return result;
  }

  /** A day's counts as the file has them now: from memory when the file is the version we know. */
  private async load(day: number, slicer = new WorkSlicer(this.sliceBudgetMs)): Promise<DayFile> {
    const path = this.pathOf(day);
    const cached = this.cache.get(day);
    let signature: string;
    let snapshot: FileVersion | undefined;
    try {
      signature = await signatureIfAny(path);
      // Read only when it is not the version we know (a day file of 10,000 keys is about 1 MB).
      snapshot = signature === '' || cached?.signature === signature ? undefined : readVersion(path);
    } catch (err) {
      throw new StoreError('ERR_DAYMIND_STORE_UNREADABLE', path, `cannot read the usage history file ${path}: ${describeError(err)}`, {
        cause: err,
      });
    }
    if (cached && signature !== '' && cached.signature === signature) {
      this.cache.delete(day);
      this.cache.set(day, cached);
      return cached.counts;
    }
    if (!snapshot) {
      this.forget(day);
      const empty: DayFile = new Map();
      return empty;
    }
    await closeOpenFile(snapshot.handle);
    const counts = await parseDayFileInSlices(path, snapshot.bytes, slicer);
    this.forget(day);
    this.remember(day, snapshot.signature, counts);
    return counts;
  }

  private remember(day: number, signature: string, counts: DayFile): void {
    const previous = this.cache.get(day);
    if (previous) {
      this.cachedEntries -= previous.counts.size;
      this.cache.delete(day);
    }
    this.cache.set(day, { signature, counts });
    this.cachedEntries += counts.size;
    for (const [oldDay, entry] of this.cache) {
      if (this.cachedEntries <= MAX_CACHED_ENTRIES || oldDay === day) break;
      this.cache.delete(oldDay);
      this.cachedEntries -= entry.counts.size;
    }
  }

  private forget(day: number): void {
    const cached = this.cache.get(day);
    if (!cached) return;
    this.cache.delete(day);
    this.cachedEntries -= cached.counts.size;
  }

  /** Deletes day files older than the retention period (once a day). */
  private async prune(): Promise<void> {
    const oldest = dayOffset(this.now(), -(HISTORY_RETENTION_DAYS - 1));
    if (oldest <= this.prunedBefore) return;
    this.prunedBefore = oldest;
    const cutoff = `${isoDay(oldest)}.json`;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (/^\d{4}-\d{2}-\d{2}\.json$/.test(name) && name < cutoff) {
        await unlink(join(this.dir, name)).catch(() => undefined);
        this.forget(Number(name.slice(0, 10).replace(/-/g, '')));
      }
    }
  }
}

function parseDayFile(path: string, text: string): DayFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StoreError(
      'ERR_DAYMIND_STORE_CORRUPT',
      path,
      `the usage history file ${path} is not valid JSON (${describeError(err)}); it is left as it is`,
      {
        cause: err,
      },
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new StoreError('ERR_DAYMIND_STORE_CORRUPT', path, `the usage history file ${path} is not a JSON object; it is left as it is`);
  }
  const counts: DayFile = new Map();
  for (const [hash, value] of Object.entries(parsed)) counts.set(hash, dayCounts(path, hash, value));
  return counts;
}

/**
 * parseDayFile() of a day file as read, in slices (see parseChunksInSlices): the same counts, or
 * the same error. Another process's flush rewrites the day file, and a day of 100,000 keys is
 * about 8 MB.
 */
async function parseDayFileInSlices(path: string, bytes: Buffer, slicer: WorkSlicer): Promise<DayFile> {
  const chunks = await parseChunksInSlices(bytes, '{', slicer);
  if (!chunks) return parseDayFile(path, bytes.toString('utf8'));
  const members = new Map<string, unknown>(); // a later duplicate wins, in the first one's place, as in JSON.parse
  for (const chunk of chunks) {
    for (const [hash, value] of Object.entries(chunk as object)) members.set(hash, value);
    if (slicer.due()) await slicer.yield();
  }
  const counts: DayFile = new Map();
  for (const [hash, value] of members) {
    counts.set(hash, dayCounts(path, hash, value));
    if (slicer.due()) await slicer.yield();
  }
  return counts;
}

/** One member of a day file: [allowed, rate limited]. */
function dayCounts(path: string, hash: string, value: unknown): [number, number] {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new StoreError(
      'ERR_DAYMIND_STORE_CORRUPT',
      path,
      `the usage history file ${path} has a bad entry for ${hash}; it is left as it is`,
    );
  }
  return [value[0], value[1]];
}

/** The day file as text parts, one key a line, cut by time (WorkSlicer) so that requests go on meanwhile. */
async function serialize(counts: DayFile): Promise<string[]> {
  const parts: string[] = ['{'];
  const slicer = new WorkSlicer();
  let slice: string[] = [];
  let first = true;
  for (const [hash, [allowed, rateLimited]] of counts) {
    slice.push(`${first ? '' : ','}\n${JSON.stringify(hash)}:[${allowed},${rateLimited}]`);
    first = false;
    if (slice.length >= SLICE) {
      parts.push(slice.join(''));
      slice = [];
    }
    if (slicer.due()) await slicer.yield();
  }
  parts.push(slice.join(''), '\n}\n');
  return parts;
}
