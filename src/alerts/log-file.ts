import { mkdirSync, statSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';
import { appendLines } from '../billing/jsonl';
import { acquireLock, underLock, type FileLock } from '../internal/fs/lock';
import { stillDetectable } from './detect';
import type { AlertEvent, AlertLog, PendingAlert } from './types';

/** Bytes the file must have, at least, before it is compacted (and twice its size after the last compaction). */
export const COMPACT_MIN_BYTES = 1024 * 1024;

/** The alerts file of a JSON key store: beside it. */
export const alertsPathFor = (storePath: string): string => `${storePath}.alerts`;

interface Claimed {
  event: AlertEvent;
  deliveredTo: Set<string>;
}

/**
 * Alerts claimed in an append-only JSONL file beside the key store, shared by the processes on
 * that store: `{"claim": event}` claims an alert and puts it in the outbox in one fsynced append,
 * made under the file's lock after reading what the others appended, so an id is claimed once;
 * `{"delivered": [ids], "url": url}` records deliveries. A damaged line is reported (naming the
 * file and line) and skipped, never rewritten.
 *
 * Once it has grown past COMPACT_MIN_BYTES and twice its last compacted size, tidy() rewrites it
 * under the lock (a temporary `<file>.compact`, fsynced, renamed over it) without the alerts
 * delivered everywhere whose period is over; a file with a damaged line is left as it is. The
 * other processes see the new file (another inode) and read it afresh.
 */
export class FileAlertLog implements AlertLog {
  private readonly claims = new Map<string, Claimed>();
  private offset = 0;
  private line = 0;
  /** The inode of the file read, and its size after its last compaction. */
  private ino: number | undefined;
  private base = 0;
  private readonly reported = new Set<number>();

  constructor(
    readonly path: string,
    private readonly onError: (err: Error) => void,
    private readonly compactMinBytes = COMPACT_MIN_BYTES,
  ) {
    mkdirSync(dirname(path), { recursive: true });
  }

  async claim(events: AlertEvent[]): Promise<AlertEvent[]> {
    if (events.every((e) => this.claims.has(e.id))) return [];
    return this.locked(async (lock) => {
      await this.refresh();
      const fresh: AlertEvent[] = [];
      const seen = new Set<string>();
      for (const event of events) {
        if (this.claims.has(event.id) || seen.has(event.id)) continue;
        seen.add(event.id);
        fresh.push(event);
      }
      await appendLines(
        this.path,
        fresh.map((event) => JSON.stringify({ claim: event })),
        lock,
      );
      await this.refresh();
      return fresh;
    });
  }

  async pending(urls: readonly string[]): Promise<PendingAlert[]> {
    await this.refresh();
    return [...this.claims.values()].filter((c) => urls.some((url) => !c.deliveredTo.has(url)));
  }

  async delivered(ids: string[], url: string, _urls: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.locked((lock) => appendLines(this.path, [JSON.stringify({ delivered: ids, url })], lock));
    for (const id of ids) this.claims.get(id)?.deliveredTo.add(url);
  }

  async whileDelivering<T>(run: () => Promise<T>): Promise<T | undefined> {
    let lock: FileLock;
    try {
      lock = await acquireLock(`${this.path}.delivery`, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') return undefined;
      throw err;
    }
    try {
      return await run();
    } finally {
      await lock.release();
    }
  }

  async tidy(urls: readonly string[], nowMs: number): Promise<void> {
    if (this.offset < Math.max(this.compactMinBytes, 2 * this.base) || this.reported.size > 0) return;
    await this.locked(async (lock) => {
      await this.refresh();
      // A damaged line, or a last line cut short by a crash, is never dropped by a rewrite.
      if (this.reported.size > 0 || statSync(this.path).size !== this.offset) return;
      const kept = [...this.claims.values()].filter((c) => !urls.every((url) => c.deliveredTo.has(url)) || stillDetectable(c.event, nowMs));
      const lines = kept.map((c) => JSON.stringify({ claim: c.event }));
      const byUrl = new Map<string, string[]>();
      for (const c of kept) for (const url of c.deliveredTo) byUrl.set(url, [...(byUrl.get(url) ?? []), c.event.id]);
      for (const [url, ids] of byUrl) lines.push(JSON.stringify({ delivered: ids, url }));
      const temp = `${this.path}.compact`;
      const handle = await fsp.open(temp, 'w', 0o600);
      try {
        await handle.writeFile(lines.map((l) => `${l}\n`).join(''));
        await handle.sync();
      } finally {
        await handle.close();
      }
      lock.assertHeld();
      await fsp.rename(temp, this.path);
      await this.refresh();
      this.base = this.offset;
    });
  }

  async close(): Promise<void> {}

  /** Runs `run` under the file's lock (see underLock). */
  private locked<T>(run: (lock: FileLock) => Promise<T>): Promise<T> {
    return underLock(this.path, 'the alerts file', run);
  }

  /** Reads the whole lines appended since the last read. */
  private async refresh(): Promise<void> {
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const { size, ino } = await handle.stat();
      if (ino !== this.ino || size < this.offset) {
        // A new file (compacted by a process): read it afresh.
        this.claims.clear();
        this.reported.clear();
        this.offset = this.line = 0;
        this.base = this.ino === undefined ? 0 : size;
        this.ino = ino;
      }
      if (size <= this.offset) return;
      const buffer = Buffer.alloc(size - this.offset);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.offset);
      const end = buffer.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (end < 0) return;
      for (const text of buffer.subarray(0, end).toString('utf8').split('\n')) {
        this.line++;
        if (text.trim() !== '') this.apply(text);
      }
      this.offset += end + 1;
    } finally {
      await handle.close();
    }
  }

  private apply(text: string): void {
    try {
      const entry = JSON.parse(text) as { claim?: AlertEvent; delivered?: string[]; url?: string };
      if (entry.claim && typeof entry.claim.id === 'string') {
        if (!this.claims.has(entry.claim.id)) this.claims.set(entry.claim.id, { event: entry.claim, deliveredTo: new Set() });
        return;
      }
      if (Array.isArray(entry.delivered) && typeof entry.url === 'string') {
        for (const id of entry.delivered) this.claims.get(id)?.deliveredTo.add(entry.url);
        return;
      }
    } catch {
      // reported below
    }
    if (this.reported.has(this.line)) return;
    this.reported.add(this.line);
    this.onError(new Error(`the alerts file ${this.path} has a damaged line ${this.line}; it is skipped and left as it is`));
  }
}
