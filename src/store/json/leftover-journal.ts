import type { UsageDelta } from '../types';

/**
 * The usage journal of earlier versions: `<store file>.journal`, JSON lines. Earlier versions
 * appended usage flushes of large stores there and folded them into the store file now and then;
 * this version no longer writes one, but takes in a journal one of them left (a process killed
 * before it folded, or still running during an upgrade) so that no count is lost. The store
 * applies it, and its next write of the file holds that usage and removes the journal.
 *
 * The first line names the exact version of the store file the journal goes with (its signature:
 * inode, size, mtime); each further line is one applied batch of usage deltas, in order:
 *
 *     {"daymind_usage_journal":1,"store":"1234:30000000:1795550000000000000","created":1795550000000}
 *     {"deltas":[{"key_hash":"…","units":3,"last_used":1795550001,"days":[{"day":20261124,"units":3}]}]}
 *
 * A journal naming another version of the file (one rewritten since) is already held by it and is
 * ignored. A last line without its newline, or one that does not parse, is the torn end of an
 * append cut short: ignored.
 */
export const JOURNAL_SUFFIX = '.journal';

export interface JournalContent {
  /** The signature of the store file the journal goes with. */
  store: string;
  /** The batches of the complete lines, in order. */
  batches: UsageDelta[][];
}

const VERSION = 1;

/** The journal's first line, newline included (as earlier versions wrote it). */
export function journalHeader(storeSignature: string, createdMs: number): string {
  return JSON.stringify({ daymind_usage_journal: VERSION, store: storeSignature, created: createdMs }) + '\n';
}

/** One batch as a journal line, newline included (as earlier versions wrote it). */
export function journalLine(deltas: readonly UsageDelta[]): string {
  return JSON.stringify({ deltas }) + '\n';
}

/** A journal's content, or what is wrong with it (not for a torn end). */
export function parseJournal(text: string): JournalContent | { problem: string } {
  const lines = text.split('\n');
  lines.pop(); // after the last newline: '' or the torn end of an append
  if (lines.length === 0) return { problem: 'it has no header line' };
  const header = parseLine(lines[0]!);
  if (!isHeader(header)) return { problem: 'line 1 is not a usage journal header' };
  const content: JournalContent = { store: header.store, batches: [] };
  for (let i = 1; i < lines.length; i++) {
    const line = parseLine(lines[i]!);
    if (isBatch(line)) content.batches.push(line.deltas);
    else if (i === lines.length - 1)
      break; // the torn end of an append whose newline got through
    else return { problem: `line ${i + 1} is not a batch of usage deltas` };
  }
  return content;
}

function parseLine(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isHeader(value: unknown): value is { store: string; created: number } {
  const v = value as Record<string, unknown> | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    v.daymind_usage_journal === VERSION &&
    typeof v.store === 'string' &&
    typeof v.created === 'number' &&
    Number.isFinite(v.created)
  );
}

function isBatch(value: unknown): value is { deltas: UsageDelta[] } {
  const deltas = (value as { deltas?: unknown } | undefined)?.deltas;
  return Array.isArray(deltas) && deltas.every(isDelta);
}

function isDelta(value: unknown): value is UsageDelta {
  const d = value as Record<string, unknown> | null;
  return (
    typeof d === 'object' &&
    d !== null &&
    typeof d.key_hash === 'string' &&
    Number.isSafeInteger(d.units) &&
    typeof d.last_used === 'number' &&
    Array.isArray(d.days) &&
    d.days.every((x: unknown) => {
      const day = x as Record<string, unknown> | null;
      return typeof day === 'object' && day !== null && Number.isSafeInteger(day.day) && Number.isSafeInteger(day.units);
    }) &&
    (d.credits === undefined || Number.isSafeInteger(d.credits))
  );
}
