import { hasValidChecksum } from '../keys';
import { StoreDoc, seedSlices, seedSlicesInSlices, type EncodedSlice } from './json-doc';
import { rawHash, toKeyRecord, type RawRecord } from './record';
import type { WorkSlicer } from './slicer';
import type { KeyRecord, UsageDelta } from './types';

/**
 * What a JSON store serves from, for a document as read from its file: the records, the typed view
 * of each by hash, where each sits, and the file's encoded slices for the next write.
 */
export interface StoreState {
  raws: RawRecord[];
  index: Map<string, KeyRecord>;
  /** Position of each hash's record in `raws` (the first, when a hash occurs twice). */
  positions: Map<string, number>;
  /** Hashes of plain keys without the checksum format (older deployments). */
  unchecksummed: Set<string>;
  encoded: EncodedSlice[];
}

/** How records are read: plain keys' hashes are cached across reloads. */
export interface StateContext {
  hashCache: Map<string, string>;
  keyPrefix: string;
}

/** The state of a document read as `bytes`, in one synchronous step (a store's first load). */
export function buildState(raws: RawRecord[], bytes: Buffer, context: StateContext): StoreState {
  const state = emptyState(raws);
  for (let i = 0; i < raws.length; i++) addRecord(state, i, context);
  state.encoded = seedSlices(bytes, raws);
  return state;
}

/** buildState() with the event loop let in whenever the slicer says so (a reload while serving). */
export async function buildStateInSlices(raws: RawRecord[], bytes: Buffer, context: StateContext, slicer: WorkSlicer): Promise<StoreState> {
  const state = emptyState(raws);
  for (let i = 0; i < raws.length; i++) {
    addRecord(state, i, context);
    if (slicer.due()) await slicer.yield();
  }
  state.encoded = await seedSlicesInSlices(bytes, raws, slicer);
  return state;
}

/**
 * Applies a usage journal's batches (see usage-journal.ts) to a state built from its file, as
 * the writes that appended them applied them (StoreDoc.addUsage). Records are replaced by changed
 * copies, never changed: the encoded slices still hold the file's records, so a later rewrite
 * encodes the changed ones anew. Deltas of keys not in the state are skipped (the writer skipped
 * them too).
 */
export function applyJournal(state: StoreState, batches: readonly (readonly UsageDelta[])[], context: StateContext): void {
  const doc = new StoreDoc(state.raws, state.positions, context.hashCache);
  for (const batch of batches) for (const delta of batch) doc.addUsage(delta);
  installJournal(state, doc, context);
}

/** applyJournal() with the event loop let in whenever the slicer says so. */
export async function applyJournalInSlices(
  state: StoreState,
  batches: readonly (readonly UsageDelta[])[],
  context: StateContext,
  slicer: WorkSlicer,
): Promise<void> {
  const doc = new StoreDoc(state.raws, state.positions, context.hashCache);
  await addBatchesInSlices(doc, batches, slicer);
  installJournal(state, doc, context);
}

/** Adds a journal's batches to a document in order (StoreDoc.addUsage), letting the event loop in whenever the slicer says so. */
export async function addBatchesInSlices(doc: StoreDoc, batches: readonly (readonly UsageDelta[])[], slicer: WorkSlicer): Promise<void> {
  for (const batch of batches) {
    for (const delta of batch) {
      doc.addUsage(delta);
      if (slicer.due()) await slicer.yield();
    }
  }
}

function installJournal(state: StoreState, doc: StoreDoc, { keyPrefix }: StateContext): void {
  state.raws = doc.installInto(state.raws);
  for (const hash of doc.touched) state.index.set(hash, toKeyRecord(doc.record(state.positions.get(hash)!)!, hash, keyPrefix));
}

function emptyState(raws: RawRecord[]): StoreState {
  return { raws, index: new Map(), positions: new Map(), unchecksummed: new Set(), encoded: [] };
}

function addRecord(state: StoreState, i: number, { hashCache, keyPrefix }: StateContext): void {
  const raw = state.raws[i]!;
  const hash = rawHash(raw, hashCache);
  if (state.index.has(hash)) return;
  state.index.set(hash, toKeyRecord(raw, hash, keyPrefix));
  state.positions.set(hash, i);
  if (typeof raw.key === 'string' && !hasValidChecksum(raw.key, keyPrefix)) state.unchecksummed.add(hash);
}
