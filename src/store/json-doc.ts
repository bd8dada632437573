import { rawHash, type RawRecord } from './record';

/**
 * A working copy of a store document for one write: records are copied on first edit, so the
 * state that requests read is untouched until the write has reached the disk.
 */
export class StoreDoc {
  readonly raws: RawRecord[];
  /** Hashes of records edited or added. */
  readonly touched = new Set<string>();
  private readonly added = new Map<string, number>();

  constructor(
    base: readonly RawRecord[],
    private readonly positions: ReadonlyMap<string, number>,
    private readonly hashCache: Map<string, string>,
  ) {
    this.raws = base.slice();
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

  /** A private copy of the record with this hash, to change in place; undefined when absent. */
  edit(hash: string): RawRecord | undefined {
    const at = this.positions.get(hash) ?? this.added.get(hash);
    if (at === undefined) return undefined;
    const copy = { ...this.raws[at]! };
    this.raws[at] = copy;
    this.touched.add(hash);
    return copy;
  }

  add(raw: RawRecord): void {
    const hash = rawHash(raw, this.hashCache);
    this.raws.push(raw);
    if (!this.has(hash)) this.added.set(hash, this.raws.length - 1);
    this.touched.add(hash);
  }
}

/** Positions of the records by hash, first occurrence winning. */
export function positionsOf(raws: readonly RawRecord[], hashCache: Map<string, string>): Map<string, number> {
  const positions = new Map<string, number>();
  raws.forEach((raw, i) => {
    const hash = rawHash(raw, hashCache);
    if (!positions.has(hash)) positions.set(hash, i);
  });
  return positions;
}

const CHUNK = 1000;
/** Records serialised between two yields to the event loop (each a few microseconds). */
const YIELD_AFTER = 250;

/** Lets the event loop run (requests, timers) between two slices of long work. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One encoded slice: its records, its bytes, and where each record's line ends in them. */
interface EncodedSlice {
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

  /** Keeps the first `count` slices (the document has no more). */
  truncate(count: number): void {
    this.slices.length = Math.min(this.slices.length, count);
  }
}

function sameRecords(cached: EncodedSlice, records: readonly RawRecord[]): boolean {
  if (cached.records.length !== records.length) return false;
  for (let i = 0; i < records.length; i++) if (cached.records[i] !== records[i]) return false;
  return true;
}

const SEPARATOR = Buffer.from(',\n');

/**
 * The store document as encoded parts, one record per line, in slices of 1,000 records (see
 * EncodedSlices). New lines are serialised with a yield to the event loop every few hundred
 * records, so that a large store never stalls requests for long.
 */
export async function serializeRecords(raws: readonly RawRecord[], slices: EncodedSlices = new EncodedSlices()): Promise<Buffer[]> {
  if (raws.length === 0) return [Buffer.from('[]\n')];
  const parts: Buffer[] = [];
  const work = { done: 0 };
  for (let i = 0; i < raws.length; i += CHUNK) {
    const index = i / CHUNK;
    const records = raws.slice(i, i + CHUNK);
    const cached = slices.get(index);
    let slice = cached && sameRecords(cached, records) ? cached : undefined;
    if (!slice) {
      slice = await encodeSlice(records, cached, i === 0, work);
      slices.set(index, slice);
      if (work.done >= YIELD_AFTER) {
        work.done = 0;
        await yieldToEventLoop();
      }
    }
    parts.push(slice.bytes);
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
  work: { done: number },
): Promise<EncodedSlice> {
  const fresh = new Array<Buffer | undefined>(records.length);
  const prefix = first ? '[\n' : ',\n';
  let total = prefix.length + SEPARATOR.length * (records.length - 1);
  for (let j = 0; j < records.length; j++) {
    if (previous && previous.records[j] === records[j]) {
      total += previous.ends[j]! - lineStart(previous, j);
      continue;
    }
    const line = Buffer.from('  ' + JSON.stringify(records[j]));
    fresh[j] = line;
    total += line.length;
    if (++work.done >= YIELD_AFTER) {
      work.done = 0;
      await yieldToEventLoop();
    }
  }
  const bytes = Buffer.allocUnsafe(total);
  const ends = new Uint32Array(records.length);
  let at = bytes.write(prefix, 0, 'latin1');
  for (let j = 0; j < records.length; j++) {
    if (j > 0) at += SEPARATOR.copy(bytes, at);
    const line = fresh[j];
    at += line ? line.copy(bytes, at) : previous!.bytes.copy(bytes, at, lineStart(previous!, j), previous!.ends[j]);
    ends[j] = at;
  }
  work.done += records.length / 40; // copying a slice costs about as much as serialising 25 records
  return { records, bytes, ends };
}

/** Where record j's line starts in a slice: after the prefix or the separator before it. */
function lineStart(slice: EncodedSlice, j: number): number {
  return j === 0 ? 2 : slice.ends[j - 1]! + SEPARATOR.length;
}
