import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { closeOpenFile, fstatFd, openFd, signatureOf, writeAllBuffers } from './file-io';
import type { FileLock } from './lock';
import type { WorkSlicer } from './slicer';
import type { UsageDelta } from './types';

/**
 * The usage journal of a large JSON store: `<store file>.journal`, JSON lines. The first line names
 * the exact version of the store file the journal goes with (its signature: inode, size, mtime);
 * each further line is one applied batch of usage deltas, in order:
 *
 *     {"daymind_usage_journal":1,"store":"1234:30000000:1795550000000000000","created":1795550000000}
 *     {"deltas":[{"key_hash":"…","units":3,"last_used":1795550001,"days":[{"day":20261124,"units":3}]}]}
 *
 * The store's state is its file with the journal's batches applied (addUsage, spendCredits: the
 * same steps a rewrite takes, so the result is the same). A journal naming another version of
 * the file (one rewritten since, by a fold whose removal of the journal did not happen, or by a
 * tool that does not know journals) is ignored. A last line without its newline, or one that does
 * not parse, is the torn end of an append cut short: ignored, and cut off by the next append.
 */
export const JOURNAL_SUFFIX = '.journal';

export interface JournalContent {
  /** The signature of the store file the journal goes with. */
  store: string;
  /** When the journal was started (Unix ms): a fold is due some time after. */
  createdMs: number;
  /** The batches of the complete lines, in order. */
  batches: UsageDelta[][];
  /** Bytes of the complete lines, header included: where the next append goes. */
  length: number;
}

const VERSION = 1;
const NEWLINE = 0x0a;

/** The journal's first line, newline included. */
export function journalHeader(storeSignature: string, createdMs: number): string {
  return JSON.stringify({ daymind_usage_journal: VERSION, store: storeSignature, created: createdMs }) + '\n';
}

/** One batch as a journal line, newline included. */
export function journalLine(deltas: readonly UsageDelta[]): string {
  return JSON.stringify({ deltas }) + '\n';
}

/** journalLine(), a delta at a time, with the event loop let in whenever the slicer says so (a flush of many keys). */
export async function journalLineInSlices(deltas: readonly UsageDelta[], slicer: WorkSlicer): Promise<string> {
  const parts = new Array<string>(deltas.length);
  for (let i = 0; i < deltas.length; i++) {
    parts[i] = JSON.stringify(deltas[i]);
    if (slicer.due()) await slicer.yield();
  }
  return `{"deltas":[${parts.join(',')}]}\n`;
}

/**
 * Parses a journal; throws an Error saying what is wrong when it is not one (not for a torn end).
 * With `from` (the end of a line, as a known journal's `length`), only the batches of the lines
 * after it are parsed and returned: a reader that knows the start of a journal reads its new
 * lines only. The lines before it are only checked for the shape of a batch line (the JSON they
 * hold was parsed when they were new).
 */
export function parseJournal(bytes: Buffer, from = 0): JournalContent {
  const lines: Array<{ start: number; end: number }> = [];
  let start = 0;
  for (let end = bytes.indexOf(NEWLINE); end >= 0; end = bytes.indexOf(NEWLINE, start)) {
    lines.push({ start, end });
    start = end + 1;
  }
  if (lines.length === 0) throw new Error('it has no header line');
  const text = (i: number): string => bytes.toString('utf8', lines[i]!.start, lines[i]!.end);
  const header = parseLine(text(0));
  if (!isHeader(header)) throw new Error('line 1 is not a usage journal header');
  const content: JournalContent = { store: header.store, createdMs: header.created, batches: [], length: lines[0]!.end + 1 };
  for (let i = 1; i < lines.length; i++) {
    const { start: lineStart, end } = lines[i]!;
    const known = end < from;
    const line = known ? undefined : parseLine(text(i));
    if (known ? !framedAsBatch(bytes, lineStart, end) : !isBatch(line)) {
      if (!known && i === lines.length - 1) break; // the torn end of an append
      throw new Error(`line ${i + 1} is not a batch of usage deltas`);
    }
    if (line) content.batches.push((line as { deltas: UsageDelta[] }).deltas);
    content.length = end + 1;
  }
  return content;
}

const BATCH_START = Buffer.from('{"deltas":[');
const BATCH_END = Buffer.from(']}');

/** Whether bytes[start, end) look like a batch line as journalLine() writes it. */
function framedAsBatch(bytes: Buffer, start: number, end: number): boolean {
  return (
    end - start >= BATCH_START.length + BATCH_END.length &&
    bytes.compare(BATCH_START, 0, BATCH_START.length, start, start + BATCH_START.length) === 0 &&
    bytes.compare(BATCH_END, 0, BATCH_END.length, end - BATCH_END.length, end) === 0
  );
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

const ftruncateFd = promisify(fs.ftruncate);
const fdatasyncFd = promisify(fs.fdatasync);

/** The journal on disk is shorter than the state says: the state must be read again before a write. */
export class JournalMismatch extends Error {}

/**
 * Appends `text` to the journal at `path` at byte `at` (the end of its last complete line): a torn
 * end left by an append cut short is cut off first. Under `lock` (the store's), only while it is
 * held (LockLost otherwise). The data reaches the disk (fdatasync) before this resolves. Returns
 * the file, still open, and its signature after the append. Throws a JournalMismatch, writing
 * nothing, when the file is shorter than `at`.
 */
export async function appendAt(path: string, at: number, text: string, lock?: FileLock): Promise<{ handle: number; signature: string }> {
  const fd = await openFd(path, 'r+');
  try {
    const size = (await fstatFd(fd, { bigint: true })).size;
    if (size < BigInt(at)) throw new JournalMismatch(`the usage journal ${path} holds ${size} bytes, not the ${at} this process knows`);
    // Only while the lock is held: past it, the journal may hold another holder's lines beyond `at`.
    lock?.assertHeld();
    if (size > BigInt(at)) await ftruncateFd(fd, at);
    lock?.assertHeld();
    await writeAllBuffers(fd, [Buffer.from(text)], at);
    await fdatasyncFd(fd);
    return { handle: fd, signature: signatureOf(await fstatFd(fd, { bigint: true })) };
  } catch (err) {
    void closeOpenFile(fd);
    throw err;
  }
}
