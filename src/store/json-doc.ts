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

const CHUNK = 2000;

/** Lets the event loop run (requests, timers) between two slices of long work. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Encoded slices of the last write, each with the records it was made from: a slice whose records
 * are all the same objects again (records are replaced, never changed) is written as it was,
 * without encoding it again. So a flush of a large store that changed a few records encodes a
 * few slices, not the whole file.
 */
export class EncodedSlices {
  private slices: Array<{ records: readonly RawRecord[]; bytes: Buffer } | undefined> = [];

  get(index: number, records: readonly RawRecord[]): Buffer | undefined {
    const cached = this.slices[index];
    if (!cached || cached.records.length !== records.length) return undefined;
    for (let i = 0; i < records.length; i++) if (cached.records[i] !== records[i]) return undefined;
    return cached.bytes;
  }

  set(index: number, records: readonly RawRecord[], bytes: Buffer): void {
    this.slices[index] = { records, bytes };
  }

  /** Keeps the first `count` slices (the document has no more). */
  truncate(count: number): void {
    this.slices.length = Math.min(this.slices.length, count);
  }
}

/**
 * The store document as encoded parts, one record per line. Slices of 2,000 records unchanged
 * since the last write come from `slices`; lines of unchanged records from `lines`; the others are
 * serialised with a yield to the event loop between slices, so that a large store neither stalls
 * requests nor costs a full JSON.stringify and UTF-8 encoding on every flush.
 */
export async function serializeRecords(
  raws: readonly RawRecord[],
  lines: WeakMap<RawRecord, string>,
  slices: EncodedSlices = new EncodedSlices(),
): Promise<Buffer[]> {
  if (raws.length === 0) return [Buffer.from('[]\n')];
  const parts: Buffer[] = [];
  let work = 0;
  for (let i = 0; i < raws.length; i += CHUNK) {
    const slice = raws.slice(i, i + CHUNK);
    const index = i / CHUNK;
    let bytes = slices.get(index, slice);
    if (!bytes) {
      const body = slice
        .map((raw) => {
          let line = lines.get(raw);
          if (line === undefined) {
            line = '  ' + JSON.stringify(raw);
            lines.set(raw, line);
            work++;
          }
          return line;
        })
        .join(',\n');
      bytes = Buffer.from((i === 0 ? '[\n' : ',\n') + body);
      slices.set(index, slice, bytes);
      work += CHUNK / 10;
    }
    parts.push(bytes);
    // Yield after about a slice's worth of JSON.stringify or encoding.
    if (work >= CHUNK) {
      work = 0;
      await yieldToEventLoop();
    }
  }
  slices.truncate(Math.ceil(raws.length / CHUNK));
  parts.push(Buffer.from('\n]\n'));
  return parts;
}
