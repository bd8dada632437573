import { hasValidChecksum } from '../../keys';
import { addUsage, rawHash, spendCredits, toKeyRecord, type RawRecord } from '../record';
import type { KeyRecord, UsageDelta } from '../types';

/** What a JSON store serves from: the records of its file, and the typed view of each by hash. */
export interface StoreState {
  raws: RawRecord[];
  index: Map<string, KeyRecord>;
  /** Position of each hash's record in `raws` (the first, when a hash occurs twice). */
  positions: Map<string, number>;
  /** Hashes of plain keys without the checksum format (older deployments). */
  unchecksummed: Set<string>;
}

/** How records are read: plain keys' hashes are cached across reloads. */
export interface StateContext {
  hashCache: Map<string, string>;
  keyPrefix: string;
}

/** The state of the records of a file. */
export function buildState(raws: RawRecord[], context: StateContext): StoreState {
  const state: StoreState = { raws, index: new Map(), positions: new Map(), unchecksummed: new Set() };
  for (let i = 0; i < raws.length; i++) addPosition(state, rawHash(raws[i]!, context.hashCache), i, context);
  return state;
}

function addPosition(state: StoreState, hash: string, at: number, { keyPrefix }: StateContext): void {
  if (state.positions.has(hash)) return;
  const raw = state.raws[at]!;
  state.positions.set(hash, at);
  state.index.set(hash, toKeyRecord(raw, hash, keyPrefix));
  if (typeof raw.key === 'string' && !hasValidChecksum(raw.key, keyPrefix)) state.unchecksummed.add(hash);
}

/**
 * A working copy of a store's records for one write: a record is copied on its first edit, so
 * the state that requests read is untouched until the write has reached the disk (then
 * {@link installEdits}).
 */
export class StoreDoc {
  readonly raws: RawRecord[];
  /** Hashes of records edited or added. */
  readonly touched = new Set<string>();
  private readonly added = new Map<string, number>();
  private readonly copied = new Set<number>();

  constructor(
    private readonly state: StoreState,
    private readonly hashCache: Map<string, string>,
  ) {
    this.raws = state.raws.slice();
  }

  /** Where the record with this hash is, or undefined. */
  position(hash: string): number | undefined {
    return this.state.positions.get(hash) ?? this.added.get(hash);
  }

  /** The record with this hash, copied on first edit, to change in place; undefined when absent. */
  edit(hash: string): RawRecord | undefined {
    const at = this.position(hash);
    if (at === undefined) return undefined;
    if (!this.copied.has(at)) {
      this.raws[at] = { ...this.raws[at]! };
      this.copied.add(at);
    }
    this.touched.add(hash);
    return this.raws[at];
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
    this.raws.push(raw);
    this.copied.add(this.raws.length - 1);
    if (this.position(hash) === undefined) this.added.set(hash, this.raws.length - 1);
    this.touched.add(hash);
  }
}

/** Makes the document the state (once it is on disk): only the records it touched are rebuilt. */
export function installEdits(state: StoreState, doc: StoreDoc, context: StateContext): void {
  const positions = new Map<string, number>();
  for (const hash of doc.touched) positions.set(hash, doc.position(hash)!);
  state.raws = doc.raws;
  for (const [hash, at] of positions) {
    if (state.positions.has(hash)) state.index.set(hash, toKeyRecord(state.raws[at]!, hash, context.keyPrefix));
    else addPosition(state, hash, at, context);
  }
}

/**
 * Each record's line as last written. Records are never changed once they are part of the state
 * (a write edits copies), so a record object always has the same line: a flush serialises only
 * the records it changed.
 */
const lines = new WeakMap<RawRecord, string>();

function lineOf(raw: RawRecord): string {
  let line = lines.get(raw);
  if (line === undefined) {
    line = '  ' + JSON.stringify(raw);
    lines.set(raw, line);
  }
  return line;
}

/** The store file's text: a JSON array, one record a line. */
export function serializeRecords(raws: readonly RawRecord[]): string {
  if (raws.length === 0) return '[]\n';
  return '[\n' + raws.map(lineOf).join(',\n') + '\n]\n';
}
