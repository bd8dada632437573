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
 * The store document as text parts, one record per line, serialised in chunks of 2,000 records
 * with a yield to the event loop between them, so that a large store never stalls requests.
 */
export async function serializeRecords(raws: readonly RawRecord[]): Promise<string[]> {
  if (raws.length === 0) return ['[]\n'];
  const parts: string[] = [];
  for (let i = 0; i < raws.length; i += CHUNK) {
    if (i > 0) await yieldToEventLoop();
    const body = raws
      .slice(i, i + CHUNK)
      .map((r) => '  ' + JSON.stringify(r))
      .join(',\n');
    parts.push((i === 0 ? '[\n' : ',\n') + body);
  }
  parts.push('\n]\n');
  return parts;
}
