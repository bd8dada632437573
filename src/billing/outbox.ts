import { mkdirSync, statSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeAtomic } from '../internal/fs/file-io';
import { underLock, type FileLock } from '../internal/fs/lock';
import { appendBytes, appendLines } from './jsonl';
import { OutboxState, type DamagedLine } from './outbox-state';
import type { UsageReport } from './types';
import { foldParts, reportsOf, type UsagePart } from './windows';

/** Reports a compacted outbox holds per line (a closing writes all of its reports on one line). */
const REPORTS_PER_LINE = 1000;
/** How many first bytes of the file tell a compacted file from another with the same inode. */
const HEAD_BYTES = 64;
/** Bytes appended since the last compaction before the next one, at least. */
const COMPACT_MIN_BYTES = 256 * 1024;

/**
 * The durable outbox of billing: a JSONL file, appended with fsync under a lock so that several
 * processes share it.
 *
 * - `{"parts": ...}`: the usage of one applied flush batch per key (see UsagePart), written at once;
 * - `{"reports": [...], "closes": [part ids]}`: a closing, on one line, so that the reports and the
 *   parts they consume are written together or not at all (a line cut short counts for nothing);
 * - `{"ack": [ids]}`, `{"dead": [ids]}`: reports delivered or dead-lettered;
 * - `{"report": ...}`: a pending report as earlier versions wrote it.
 *
 * The file is read incrementally (only what was appended since the last read), and compacted,
 * atomically under the lock, to what is still pending, with the parts of a window folded into
 * one line per process: its size follows what is pending, not what was ever written. A damaged
 * line is copied byte for byte to the quarantine file beside it before a compaction drops it.
 */
export class Outbox {
  readonly state = new OutboxState();
  readonly quarantinePath: string;
  /**
   * The file as last read: its inode, how far it was read (`offset`, `line`), its size after the
   * last compaction (`base`) and its first bytes (`head`): a file that another process compacted
   * can get the inode of an older one back, and is then told apart by its first line.
   */
  private known: { ino: number; offset: number; line: number; base: number; head: Buffer } | undefined;
  /** Damaged lines already quarantined, by `ino:line`: copied once, however often they are read. */
  private readonly quarantined = new Set<string>();

  constructor(readonly path: string) {
    this.quarantinePath = `${path}.quarantine`;
    mkdirSync(dirname(path), { recursive: true });
  }

  /** The file's size as last read. */
  get bytes(): number {
    return this.known?.offset ?? 0;
  }

  /** Runs `run` under the file's lock (see underLock). */
  private locked<T>(run: (lock: FileLock) => Promise<T>): Promise<T> {
    return underLock(this.path, 'the billing outbox', run);
  }

  /** Appends parts of applied usage. */
  async addParts(parts: UsagePart[]): Promise<void> {
    await this.locked((lock) =>
      appendLines(
        this.path,
        parts.map((part) => JSON.stringify({ parts: part })),
        lock,
      ),
    );
  }

  async settle(identifiers: string[], how: 'ack' | 'dead'): Promise<void> {
    if (identifiers.length === 0) return;
    await this.locked((lock) => appendLines(this.path, [JSON.stringify({ [how]: identifiers })], lock));
  }

  /**
   * Closes the pending parts that `due` picks into reports, written with the parts they consume on
   * one line. Read again under the lock first: what another process closed is not closed twice.
   */
  async close(due: (part: UsagePart) => boolean): Promise<UsageReport[]> {
    return this.locked(async (lock) => {
      await this.refresh();
      const parts = [...this.state.parts.values()].filter(due);
      if (parts.length === 0) return [];
      const reports = reportsOf(parts);
      await appendLines(this.path, [JSON.stringify({ reports, closes: parts.map((p) => p.id) })], lock);
      await this.refresh();
      return reports;
    });
  }

  /**
   * Reads what was appended since the last read (all of it after a compaction by another
   * process); answers with the reports waiting for delivery, oldest first, and the parts not closed.
   */
  async read(): Promise<{ pending: UsageReport[]; parts: UsagePart[] }> {
    await this.refresh();
    return { pending: [...this.state.reports.values()], parts: [...this.state.parts.values()] };
  }

  /** Reads what was appended since the last read, into `state`. */
  async refresh(): Promise<void> {
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.known = undefined;
      this.state.reset();
      return;
    }
    try {
      const { ino, size } = await handle.stat();
      if (!this.known || this.known.ino !== ino || size < this.known.offset || !(await this.sameHead(handle, this.known.head))) {
        this.state.reset();
        this.known = { ino, offset: 0, line: 0, base: 0, head: Buffer.alloc(0) };
      }
      const known = this.known;
      if (size === known.offset) return;
      const buffer = Buffer.alloc(size - known.offset);
      for (let at = 0; at < buffer.length;) {
        const { bytesRead } = await handle.read(buffer, at, buffer.length - at, known.offset + at);
        if (bytesRead === 0) break;
        at += bytesRead;
      }
      // Only whole lines: the rest is being appended, or was cut short by a crash (the next append
      // starts a line of its own, and the cut line is then damaged and quarantined).
      const end = buffer.lastIndexOf(0x0a);
      if (end < 0) return;
      known.line = this.state.apply(buffer.subarray(0, end + 1), known.line);
      if (known.offset === 0) known.head = Buffer.from(buffer.subarray(0, Math.min(HEAD_BYTES, end + 1)));
      known.offset += end + 1;
    } finally {
      await handle.close();
    }
  }

  /** Whether the file still starts with `head`. */
  private async sameHead(handle: fsp.FileHandle, head: Buffer): Promise<boolean> {
    if (head.length === 0) return true;
    const now = Buffer.alloc(head.length);
    const { bytesRead } = await handle.read(now, 0, head.length, 0);
    return bytesRead === head.length && now.equals(head);
  }

  /** The bytes after the last whole line read, as a damaged line (none when the file ends with a newline). */
  private async cutLine(): Promise<DamagedLine[]> {
    const known = this.known;
    if (!known) return [];
    const handle = await fsp.open(this.path, 'r');
    try {
      const { size } = await handle.stat();
      if (size <= known.offset) return [];
      const bytes = Buffer.alloc(size - known.offset);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, known.offset);
      return [{ line: known.line + 1, bytes: bytes.subarray(0, bytesRead) }];
    } finally {
      await handle.close();
    }
  }

  /** Whether a compaction would pay: damaged lines to quarantine, or enough settled or foldable bytes. */
  wantsCompaction(): boolean {
    if (!this.known) return false;
    if (this.state.damaged.length > 0) return true;
    const appended = this.known.offset - this.known.base;
    if (appended === 0) return false;
    if (this.state.reports.size === 0 && this.state.parts.size === 0) return true;
    return appended >= Math.max(COMPACT_MIN_BYTES, this.known.base / 2);
  }

  /**
   * Rewrites the file, atomically under the lock, with what is pending: parts folded per window
   * and process, pending reports. Damaged lines are first copied to the quarantine file; returns
   * them (for one message naming both files).
   */
  async compact(): Promise<DamagedLine[]> {
    return this.locked(async (lock) => {
      await this.refresh();
      // Under the lock nobody is appending: bytes after the last whole line are a line a crashed
      // writer cut short. It is damaged like any other, not dropped by the rewrite.
      const cut = await this.cutLine();
      const damaged = [...this.state.damaged, ...cut].filter((d) => !this.quarantined.has(`${this.known!.ino}:${d.line}`));
      if (damaged.length > 0) {
        await appendBytes(
          this.quarantinePath,
          damaged.map((d) => d.bytes),
        );
        for (const d of damaged) this.quarantined.add(`${this.known!.ino}:${d.line}`);
      }
      const parts = foldParts([...this.state.parts.values()]);
      const reports = [...this.state.reports.values()];
      const lines = parts.map((part) => JSON.stringify({ parts: part }) + '\n');
      for (let i = 0; i < reports.length; i += REPORTS_PER_LINE) {
        lines.push(JSON.stringify({ reports: reports.slice(i, i + REPORTS_PER_LINE) }) + '\n');
      }
      await writeAtomic(this.path, lines, lock);
      const size = lines.reduce((sum, line) => sum + Buffer.byteLength(line), 0);
      this.state.replace(parts, reports);
      const head = Buffer.from(lines.join('').slice(0, HEAD_BYTES));
      this.known = { ino: statSync(this.path).ino, offset: size, line: lines.length, base: size, head: head.subarray(0, HEAD_BYTES) };
      return damaged;
    });
  }
}
