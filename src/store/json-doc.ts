import { isFramed } from './parse-in-slices';
import { addUsage, rawHash, spendCredits, type RawRecord } from './record';
import type { UsageDelta } from './types';
import { WorkSlicer } from './slicer';

/**
 * A working copy of a store document for one write: records are copied on first edit, so the
 * state that requests read is untouched until the write has reached the disk. The array of all
 * records is copied only when something needs it whole (a rewrite of the file, an added record):
 * a usage flush that goes to the journal edits a few records of a large store, and copying an
 * array of 100,000 references every second made old-generation garbage that brought on more
 * full garbage collections of the store's large heap.
 */
export class StoreDoc {
  /** The whole document, made from the base on first need. */
  private copy: RawRecord[] | undefined;
  /** The records edited, by position. */
  private readonly edits = new Map<number, RawRecord>();
  /** Hashes of records edited or added. */
  readonly touched = new Set<string>();
  private readonly added = new Map<string, number>();

  constructor(
    private readonly base: readonly RawRecord[],
    private readonly positions: ReadonlyMap<string, number>,
    private readonly hashCache: Map<string, string>,
  ) {}

  /** All records of the document (the base copied, with the edits and additions). */
  get raws(): RawRecord[] {
    if (!this.copy) {
      this.copy = this.base.slice();
      for (const [at, raw] of this.edits) this.copy[at] = raw;
    }
    return this.copy;
  }

  /** The record at a position, as the document has it. */
  record(at: number): RawRecord | undefined {
    return this.copy ? this.copy[at] : (this.edits.get(at) ?? this.base[at]);
  }

  /**
   * The document as the new state, given the state's current array of records (of the same file
   * version as the base): the whole copy when one was made, else that array with the edited
   * records put in place (the state's own array: no copy of the whole).
   */
  installInto(current: RawRecord[]): RawRecord[] {
    if (this.copy) return this.copy;
    for (const [at, raw] of this.edits) current[at] = raw;
    return current;
  }

  addedPositions(): ReadonlyMap<string, number> {
    return this.added;
  }

  /** Records the positions of added records in `positions` (the base's map), once the write succeeded. */
  commitPositions(positions: Map<string, number>): void {
    for (const [hash, at] of this.added) if (!positions.has(hash)) positions.set(hash, at);
  }

  has(hash: string): boolean {
    return this.positions.has(hash) || this.added.has(hash);
  }

  /**
   * A private copy of the record with this hash, to change in place (the same copy when it was
   * edited before); undefined when absent.
   */
  edit(hash: string): RawRecord | undefined {
    const at = this.positions.get(hash) ?? this.added.get(hash);
    if (at === undefined) return undefined;
    const edited = this.edits.get(at);
    if (edited) return edited;
    const copy = { ...this.record(at)! };
    this.edits.set(at, copy);
    if (this.copy) this.copy[at] = copy;
    this.touched.add(hash);
    return copy;
  }

  /**
   * Adds a usage delta to its key's record (usage_count, the day and month counters, last_used,
   * and the credits spent), as a flush does; false when the key is not in the document.
   */
  addUsage(delta: UsageDelta): boolean {
    const raw = this.edit(delta.key_hash);
    if (!raw) return false;
    addUsage(raw, delta);
    spendCredits(raw, delta);
    return true;
  }

  add(raw: RawRecord): void {
    const hash = rawHash(raw, this.hashCache);
    const raws = this.raws;
    raws.push(raw);
    if (!this.has(hash)) this.added.set(hash, raws.length - 1);
    this.touched.add(hash);
  }
}

const CHUNK = 1000;

/** One encoded slice: its records, its bytes, and where each record's line ends in them. */
export interface EncodedSlice {
  records: readonly RawRecord[];
  bytes: Buffer;
  /** Byte offset just past record j's line; its line starts after the separator before it. */
  ends: Uint32Array;
}

/**
 * Encoded slices of the last write, with the records each was made from. A slice whose records
 * are all the same objects again (records are replaced, never changed) is written as it was; in
 * a slice with changes, each unchanged record's line is copied from the old bytes, so only the
 * changed records are serialised. Nothing per record is kept on the JavaScript heap: a large
 * store's flush neither re-encodes the whole file nor makes the garbage collector copy a
 * string per record.
 */
export class EncodedSlices {
  private slices: Array<EncodedSlice | undefined> = [];

  get(index: number): EncodedSlice | undefined {
    return this.slices[index];
  }

  set(index: number, slice: EncodedSlice): void {
    this.slices[index] = slice;
  }

  /** Takes the slices of a document as read (see seedSlices). */
  use(slices: EncodedSlice[]): void {
    this.slices = slices;
  }

  /** Keeps the first `count` slices (the document has no more). */
  truncate(count: number): void {
    this.slices.length = Math.min(this.slices.length, count);
  }
}

/**
 * The encoded slices of a document read from a file (its bytes, as read) as serializeRecords
 * writes it (one record a line), so that the first write after a read copies the lines of
 * unchanged records instead of serialising them all. A file in another layout (such as one
 * record over several lines) gives none, and is rewritten in this one by the next write.
 */
export function seedSlices(bytes: Buffer, raws: readonly RawRecord[]): EncodedSlice[] {
  const scan = new LineEnds(bytes, raws.length);
  while (scan.step());
  return scan.slicesOf(raws);
}

/** seedSlices() with the event loop let in whenever the slicer says so. */
export async function seedSlicesInSlices(bytes: Buffer, raws: readonly RawRecord[], slicer: WorkSlicer): Promise<EncodedSlice[]> {
  const scan = new LineEnds(bytes, raws.length);
  while (scan.step()) if (slicer.due()) await slicer.yield();
  return scan.slicesOf(raws);
}

/** Where each record's line ends in a document in serializeRecords' layout, found a line a step. */
class LineEnds {
  private readonly ends: Uint32Array;
  private next = 0;
  private start = 2;
  private fits: boolean;

  constructor(
    private readonly bytes: Buffer,
    private readonly count: number,
  ) {
    this.ends = new Uint32Array(count);
    this.fits = count > 0 && isFramed(bytes, '[');
  }

  /** Scans the next record's line; false once all are scanned or the layout does not fit. */
  step(): boolean {
    if (!this.fits || this.next === this.count) return false;
    const { bytes, start } = this;
    const newline = bytes.indexOf(NEWLINE, start);
    const last = this.next === this.count - 1;
    const end = last ? newline : newline - 1; // before the comma of a line that is not the last
    const whole =
      newline > start + 3 &&
      bytes[start] === SPACE &&
      bytes[start + 1] === SPACE &&
      bytes[start + 2] === OPEN_BRACE &&
      bytes[end - 1] === CLOSE_BRACE &&
      (last ? newline + 3 === bytes.length : bytes[end] === COMMA);
    if (!whole) {
      this.fits = false;
      return false;
    }
    this.ends[this.next++] = end;
    this.start = newline + 1;
    return true;
  }

  /** The slices of `raws` (the records the scanned document holds), or none when it did not fit. */
  slicesOf(raws: readonly RawRecord[]): EncodedSlice[] {
    if (!this.fits || this.next !== this.count) return [];
    const { bytes, ends } = this;
    const slices: EncodedSlice[] = [];
    for (let i = 0; i < raws.length; i += CHUNK) {
      const last = Math.min(i + CHUNK, raws.length) - 1;
      const from = i === 0 ? 0 : ends[i - 1]!; // the slice starts with "[\n" or ",\n"
      const sliceEnds = ends.slice(i, last + 1).map((end) => end - from);
      slices.push({ records: raws.slice(i, last + 1), bytes: bytes.subarray(from, ends[last]), ends: sliceEnds });
    }
    return slices;
  }
}

function sameRecords(cached: EncodedSlice, records: readonly RawRecord[]): boolean {
  if (cached.records.length !== records.length) return false;
  for (let i = 0; i < records.length; i++) if (cached.records[i] !== records[i]) return false;
  return true;
}

const SEPARATOR = Buffer.from(',\n');
const [NEWLINE, SPACE, OPEN_BRACE, CLOSE_BRACE, COMMA] = [0x0a, 0x20, 0x7b, 0x7d, 0x2c];

/**
 * The store document as encoded parts, one record per line, in slices of 1,000 records (see
 * EncodedSlices). The work is cut by time (WorkSlicer), so that a large store never stalls
 * requests for long.
 */
export async function serializeRecords(
  raws: readonly RawRecord[],
  slices: EncodedSlices = new EncodedSlices(),
  slicer: WorkSlicer = new WorkSlicer(),
): Promise<Buffer[]> {
  if (raws.length === 0) return [Buffer.from('[]\n')];
  const parts: Buffer[] = [];
  for (let i = 0; i < raws.length; i += CHUNK) {
    const index = i / CHUNK;
    const records = raws.slice(i, i + CHUNK);
    const cached = slices.get(index);
    let slice = cached && sameRecords(cached, records) ? cached : undefined;
    if (!slice) {
      slice = await encodeSlice(records, cached, i === 0, slicer);
      slices.set(index, slice);
    }
    parts.push(slice.bytes);
    if (slicer.due()) await slicer.yield();
  }
  slices.truncate(Math.ceil(raws.length / CHUNK));
  parts.push(Buffer.from('\n]\n'));
  return parts;
}

/**
 * Encodes `records` as one slice: the lines of records unchanged at the same place in
 * `previous` are copied from its bytes, the others serialised.
 */
async function encodeSlice(
  records: readonly RawRecord[],
  previous: EncodedSlice | undefined,
  first: boolean,
  slicer: WorkSlicer,
): Promise<EncodedSlice> {
  const fresh = new Array<string | undefined>(records.length);
  const prefix = first ? '[\n' : ',\n';
  let total = prefix.length + SEPARATOR.length * (records.length - 1);
  for (let j = 0; j < records.length; j++) {
    if (previous && previous.records[j] === records[j]) {
      total += previous.ends[j]! - lineStart(previous, j);
      continue;
    }
    const line = '  ' + JSON.stringify(records[j]);
    fresh[j] = line;
    total += Buffer.byteLength(line);
    if (slicer.due()) await slicer.yield();
  }
  const bytes = Buffer.allocUnsafe(total);
  const ends = new Uint32Array(records.length);
  let at = bytes.write(prefix, 0, 'latin1');
  for (let j = 0; j < records.length; j++) {
    if (j > 0) at += SEPARATOR.copy(bytes, at);
    const line = fresh[j];
    at += line !== undefined ? bytes.write(line, at) : previous!.bytes.copy(bytes, at, lineStart(previous!, j), previous!.ends[j]);
    ends[j] = at;
  }
  return { records, bytes, ends };
}

/** Where record j's line starts in a slice: after the prefix or the separator before it. */
function lineStart(slice: EncodedSlice, j: number): number {
  return j === 0 ? 2 : slice.ends[j - 1]! + SEPARATOR.length;
}
