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
 * The store document as text parts, one record per line. Lines of records not changed since the
 * last write come from `lines` (records are replaced, never changed, so identity tells); the
 * others are serialised in slices of 2,000 with a yield to the event loop between them, so that a
 * large store neither stalls requests nor costs a full JSON.stringify on every flush.
 */
export async function serializeRecords(raws: readonly RawRecord[], lines: WeakMap<RawRecord, string>): Promise<string[]> {
  if (raws.length === 0) return ['[]\n'];
  const parts: string[] = [];
  let fresh = 0;
  for (let i = 0; i < raws.length; i += CHUNK) {
    const slice = raws.slice(i, i + CHUNK);
    const body = slice
      .map((raw) => {
        let line = lines.get(raw);
        if (line === undefined) {
          line = '  ' + JSON.stringify(raw);
          lines.set(raw, line);
          fresh++;
        }
        return line;
      })
      .join(',\n');
    parts.push((i === 0 ? '[\n' : ',\n') + body);
    // Yield after a slice's worth of JSON.stringify, and every 10 slices of cached lines.
    if (fresh >= CHUNK || (i / CHUNK) % 10 === 9) {
      fresh = 0;
      await yieldToEventLoop();
    }
  }
  parts.push('\n]\n');
  return parts;
}
