import { isUtf8 } from 'node:buffer';
import type { UsageReport } from './types';
import type { PartEntry, UsagePart } from './windows';

/** A line of the outbox that is not one of its lines: kept byte for byte for the quarantine file. */
export interface DamagedLine {
  /** 1-based, in the file as it was read. */
  line: number;
  bytes: Buffer;
}

const ID = /^[A-Za-z0-9_:.-]{1,100}$/;
const HASH = /^[0-9a-f]{64}$/;

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const isTime = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;
const isCustomer = (c: unknown): boolean => c === null || typeof c === 'string';

function isEntry(e: unknown): e is PartEntry {
  return Array.isArray(e) && e.length === 4 && isCount(e[0]) && typeof e[1] === 'string' && typeof e[2] === 'string' && isCustomer(e[3]);
}

function isPart(p: unknown): p is UsagePart {
  const part = p as UsagePart;
  if (typeof part !== 'object' || part === null || typeof part.id !== 'string' || !ID.test(part.id) || typeof part.by !== 'string')
    return false;
  if (!isTime(part.window) || !isTime(part.at) || typeof part.keys !== 'object' || part.keys === null) return false;
  for (const hash in part.keys) if (!HASH.test(hash) || !isEntry(part.keys[hash])) return false;
  return true;
}

function isReport(r: unknown): r is UsageReport {
  const report = r as UsageReport;
  return (
    typeof report === 'object' &&
    report !== null &&
    typeof report.identifier === 'string' &&
    ID.test(report.identifier) &&
    typeof report.key_hash === 'string' &&
    typeof report.key_prefix === 'string' &&
    typeof report.owner === 'string' &&
    isCustomer(report.customer_id) &&
    isCount(report.quantity) &&
    isTime(report.window_start) &&
    isTime(report.window_end)
  );
}

const isBlank = (bytes: Buffer): boolean => bytes.every((b) => b === 0x20 || b === 0x0d || b === 0x09);

const isIds = (ids: unknown): ids is string[] => Array.isArray(ids) && ids.every((id) => typeof id === 'string');

/**
 * What the outbox holds, built line by line as the file is read: the parts not yet closed, the
 * reports not yet settled (oldest first) and the damaged lines. A line that does not parse, is
 * not UTF-8, or is not one of the outbox's shapes is damaged: it is not guessed at.
 */
export class OutboxState {
  readonly parts = new Map<string, UsagePart>();
  readonly reports = new Map<string, UsageReport>();
  damaged: DamagedLine[] = [];
  /** Parts closed and reports settled since the last compaction: a line naming them again changes nothing. */
  private readonly consumed = new Set<string>();
  private readonly settled = new Set<string>();

  reset(): void {
    this.replace([], []);
  }

  /** The state a compaction wrote. */
  replace(parts: UsagePart[], reports: UsageReport[]): void {
    this.parts.clear();
    this.reports.clear();
    this.consumed.clear();
    this.settled.clear();
    this.damaged = [];
    for (const part of parts) this.parts.set(part.id, part);
    for (const report of reports) this.reports.set(report.identifier, report);
  }

  /** Applies whole lines (`chunk` ends with a newline) that follow line `lineBefore`; returns the last line's number. */
  apply(chunk: Buffer, lineBefore: number): number {
    let line = lineBefore;
    for (let start = 0; start < chunk.length;) {
      const end = chunk.indexOf(0x0a, start);
      const bytes = chunk.subarray(start, end);
      start = end + 1;
      line++;
      if (bytes[0] !== 0x7b && isBlank(bytes)) continue; // a line starting with "{" is never blank: no scan of a long line
      if (!this.applyLine(bytes)) this.damaged.push({ line, bytes: Buffer.from(bytes) });
    }
    return line;
  }

  private applyLine(bytes: Buffer): boolean {
    if (!isUtf8(bytes)) return false;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    } catch {
      return false;
    }
    if (typeof value !== 'object' || value === null) return false;
    if ('parts' in value) {
      if (!isPart(value.parts)) return false;
      if (!this.consumed.has(value.parts.id)) this.parts.set(value.parts.id, value.parts);
      return true;
    }
    if ('reports' in value) {
      const closes = value.closes ?? [];
      if (!Array.isArray(value.reports) || !value.reports.every(isReport) || !isIds(closes)) return false;
      for (const id of closes) {
        this.parts.delete(id);
        this.consumed.add(id);
      }
      for (const report of value.reports) this.addReport(report);
      return true;
    }
    if ('report' in value) {
      if (!isReport(value.report)) return false;
      this.addReport(value.report);
      return true;
    }
    const settled = 'ack' in value ? value.ack : 'dead' in value ? value.dead : undefined;
    const ids = typeof settled === 'string' ? [settled] : settled;
    if (!isIds(ids)) return false;
    for (const id of ids) {
      this.reports.delete(id);
      this.settled.add(id);
    }
    return true;
  }

  private addReport(report: UsageReport): void {
    if (!this.settled.has(report.identifier) && !this.reports.has(report.identifier)) this.reports.set(report.identifier, report);
  }

  /**
   * Reports waiting for the provider, plus one for each key, customer and window of the parts not
   * closed yet (with `unsaved`, parts kept in memory): what the next closings will make.
   */
  depth(unsaved: UsagePart[] = []): number {
    const open = new Set<string>();
    for (const part of [...this.parts.values(), ...unsaved]) {
      for (const hash in part.keys) open.add(`${part.window}:${hash}:${part.keys[hash]![3] ?? ''}`);
    }
    return this.reports.size + open.size;
  }

  /** Unix seconds of the oldest usage in a report waiting for the provider (undefined when none waits). */
  oldestReport(): number | undefined {
    let oldest: number | undefined;
    for (const report of this.reports.values()) if (oldest === undefined || report.window_end < oldest) oldest = report.window_end;
    return oldest;
  }
}
