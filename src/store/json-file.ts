import { closeSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StoreError, describeError, type DaymindErrorCode } from '../errors';
import { DEFAULT_KEY_PREFIX } from '../keys';
import { OnceReporter } from '../report-once';
import { coalesced } from './coalesce';
import { EncodedSlices, StoreDoc, serializeRecords } from './json-doc';
import { parseRecordsInSlices } from './parse-in-slices';
import { buildState, buildStateInSlices, type StateContext, type StoreState } from './store-state';
import { SLICE_BUDGET_MS, WorkSlicer } from './slicer';
import {
  KnownVersion,
  closeOpenFile,
  acquireLock,
  createIfMissingSync,
  readWithSignature,
  readWithSignatureSync,
  statSignature,
  writeAtomicKeepingOpen,
  type OpenFile,
  type FileSnapshot,
} from './file-io';
import {
  addUsage,
  spendCredits,
  applyKeyChanges,
  createdKey,
  markRevoked,
  newRawRecord,
  parseRecords,
  rotateRaw,
  toKeyRecord,
  type RawRecord,
} from './record';
import type { CreatedKey, KeyChanges, KeyRecord, KeyStore, NewKeyInput, RotatedKey, UsageBatch, UsageDelta } from './types';

export const DEFAULT_STORE_PATH = 'data/api_keys.json';

/** A re-read that lost a race with a write of this process: dropped. */
class StaleRead extends Error {}

export interface JsonFileKeyStoreOptions {
  /** The store file. Default `data/api_keys.json` (relative to the working directory). */
  path?: string;
  /** How often the file is checked for changes made by others, in ms. Default 500. */
  reloadIntervalMs?: number;
  /** Prefix of generated keys. Default `dm_`. */
  keyPrefix?: string;
  /**
   * Create the directory and an empty store when the file is missing. Default true; with false a
   * missing file is an ERR_DAYMIND_STORE_UNREADABLE error (read-only tools, typos in a path).
   */
  create?: boolean;
  /** Called with problems met in the background (unreadable or corrupt file, failed lock). */
  onError?: (err: StoreError) => void;
}

/**
 * Keys in one JSON file (an array of records, the existing deployments' format), held in memory
 * and indexed by key hash. The request path only reads memory.
 *
 * Every write (usage, create, revoke) takes the proper-lockfile lock, re-reads the file, applies
 * its change to what it read (so other writers' counts, keys and revocations are kept) and
 * replaces the file atomically. A file that cannot be parsed is reported and never written.
 */
export class JsonFileKeyStore implements KeyStore {
  readonly path: string;
  private readonly reloadIntervalMs: number;
  private readonly keyPrefix: string;
  private readonly hashCache = new Map<string, string>();
  private readonly context: StateContext;
  private index = new Map<string, KeyRecord>();
  /**
   * Records rebuilt by the last write, read ahead of `index` until merged into it in slices (see
   * installEdits): a large batch becomes visible at once without a long synchronous loop.
   */
  private fresh: Map<string, KeyRecord> | undefined;
  /** The document as last read or written, and where each hash sits in it. */
  private raws: RawRecord[] = [];
  private positions = new Map<string, number>();
  /** Encoded slices of the last write (see EncodedSlices). */
  private readonly slices = new EncodedSlices();
  private unchecksummed = new Set<string>();
  /** The file version the state comes from, held open (see KnownVersion). */
  private readonly known = new KnownVersion();
  /** Bumped by every write of ours, so that a slower concurrent reload never installs older state. */
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  /** How long a write's or a re-read's work runs before it lets requests in, in ms (tests set 0: a turn after each step). */
  sliceBudgetMs = SLICE_BUDGET_MS;
  private writeChain: Promise<unknown> = Promise.resolve();
  /** A write's re-read of the file under way (see rereadLocked): a reload meanwhile waits for it. */
  private rereading: Promise<void> | undefined;
  /** Background problems, reported once while they last, not on every poll. */
  private readonly problems: OnceReporter<StoreError>;

  /** Loads the file synchronously; throws a {@link StoreError} naming it when it is unusable. */
  constructor(options: JsonFileKeyStoreOptions = {}) {
    this.path = resolve(options.path ?? DEFAULT_STORE_PATH);
    this.reloadIntervalMs = options.reloadIntervalMs ?? 500;
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.context = { hashCache: this.hashCache, keyPrefix: this.keyPrefix };
    this.problems = new OnceReporter(options.onError ?? ((err) => console.error(`[daymind-auth] ${err.message}`)));
    if (options.create !== false) {
      try {
        mkdirSync(dirname(this.path), { recursive: true });
        createIfMissingSync(this.path, '[]\n');
      } catch (err) {
        throw this.error('ERR_DAYMIND_STORE_WRITE', `cannot create the key store ${this.path}: ${describeError(err)}`, err);
      }
    }
    let snapshot;
    try {
      snapshot = readWithSignatureSync(this.path);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw this.error(
        'ERR_DAYMIND_STORE_UNREADABLE',
        missing ? `there is no key store at ${this.path}` : `cannot read the key store ${this.path}: ${describeError(err)}`,
        err,
      );
    }
    try {
      this.installRead(this.parse(snapshot.bytes.toString('utf8')), snapshot);
    } catch (err) {
      closeSync(snapshot.handle);
      throw err;
    }
  }

  async init(): Promise<void> {
    if (this.timer || this.reloadIntervalMs <= 0) return;
    this.timer = setInterval(() => void this.refresh(), this.reloadIntervalMs);
    this.timer.unref();
  }

  get(keyHash: string): KeyRecord | undefined {
    return this.fresh?.get(keyHash) ?? this.index.get(keyHash);
  }

  /** Number of records loaded. */
  size(): number {
    return this.index.size;
  }

  hasUnchecksummedKeys(): boolean {
    return this.unchecksummed.size > 0;
  }

  /** Whether the key with this hash is a plain key without the checksum format (older deployments). */
  isUnchecksummed(keyHash: string): boolean {
    return this.unchecksummed.has(keyHash);
  }

  /**
   * Re-reads the file if it changed. At most one re-read runs at a time and at most one more waits
   * behind it, so a burst of unknown keys costs one `stat`, not one read each.
   */
  readonly refresh = coalesced(() => this.reloadIfChanged());

  async create(input: NewKeyInput): Promise<CreatedKey> {
    return this.mutate((doc) => {
      const { key, raw } = newRawRecord(input, this.keyPrefix);
      doc.add(raw);
      return createdKey(key, raw, this.keyPrefix);
    });
  }

  async revoke(keyHash: string): Promise<KeyRecord | undefined> {
    return this.mutate((doc) => {
      const raw = doc.edit(keyHash);
      if (!raw) return undefined;
      markRevoked(raw);
      return toKeyRecord(raw, keyHash, this.keyPrefix);
    });
  }

  async rotate(keyHash: string, graceSeconds: number): Promise<RotatedKey | undefined> {
    return this.mutate((doc) => {
      const old = doc.edit(keyHash);
      if (!old) return undefined;
      const pair = [old];
      const rotated = rotateRaw(pair, (r) => r === old, keyHash, graceSeconds, this.keyPrefix)!;
      doc.add(pair[1]!);
      return rotated;
    });
  }

  async update(keyHash: string, changes: KeyChanges): Promise<KeyRecord | undefined> {
    return this.mutate((doc) => {
      const raw = doc.edit(keyHash);
      if (!raw) return undefined;
      applyKeyChanges(raw, changes);
      return toKeyRecord(raw, keyHash, this.keyPrefix);
    });
  }

  async list(): Promise<KeyRecord[]> {
    await this.refresh();
    return [...this.index].map(([hash, record]) => ({ ...(this.fresh?.get(hash) ?? record) }));
  }

  async applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    if (deltas.length === 0) return;
    const dropped = await this.mutate(async (doc, slicer) => {
      let missing = 0;
      for (const delta of deltas) {
        const raw = doc.edit(delta.key_hash);
        if (raw) {
          addUsage(raw, delta);
          spendCredits(raw, delta);
        } else missing += delta.units;
        // A flush of many keys lets requests in now and then while it is applied.
        if (slicer.due()) await slicer.yield();
      }
      return missing;
    }, batch?.onApplied);
    if (dropped > 0) {
      this.problems.report(
        this.error('ERR_DAYMIND_USAGE_FLUSH', `${dropped} usage unit(s) belong to keys no longer in ${this.path}; they were not recorded`),
      );
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.writeChain;
    await this.refresh.idle();
    await this.known.close();
  }

  private error(code: DaymindErrorCode, message: string, cause?: unknown): StoreError {
    return new StoreError(code, this.path, message, cause === undefined ? undefined : { cause });
  }

  private parse(text: string): RawRecord[] {
    try {
      return parseRecords(text);
    } catch (err) {
      throw this.corrupt(err);
    }
  }

  /** parse() of a file another process wrote, in slices (see parseRecordsInSlices). */
  private async parseInSlices(bytes: Buffer, slicer: WorkSlicer): Promise<RawRecord[]> {
    try {
      return await parseRecordsInSlices(bytes, slicer);
    } catch (err) {
      throw this.corrupt(err);
    }
  }

  private corrupt(err: unknown): StoreError {
    return this.error(
      'ERR_DAYMIND_STORE_CORRUPT',
      `the key store ${this.path} is corrupt: ${describeError(err)}. Fix or restore the file; daymind-auth will not write to it until it parses.`,
      err,
    );
  }

  /** Takes a document as read from the file as the state (built in one step: the first load). */
  private installRead(raws: RawRecord[], snapshot: FileSnapshot): void {
    this.install(buildState(raws, snapshot.bytes, this.context), snapshot);
  }

  /**
   * Takes the state of a document as just read from the file; the file's version becomes the
   * known one.
   */
  private install(state: StoreState, snapshot: FileSnapshot): void {
    this.index = state.index;
    this.fresh = undefined; // a merge still running stops (see mergeFresh)
    this.unchecksummed = state.unchecksummed;
    this.raws = state.raws;
    this.positions = state.positions;
    this.slices.use(state.encoded);
    this.known.set(snapshot.handle, snapshot.signature);
  }

  /**
   * Takes a document this process wrote as the state, rebuilding only the records it touched:
   * built in slices with yields between them, then made visible at once as the `fresh` layer
   * (so live views never see half of a batch). mergeFresh folds that layer into the index later.
   */
  private async installEdits(doc: StoreDoc, file: OpenFile, signature: string, slicer: WorkSlicer): Promise<void> {
    this.known.set(file, signature); // first: a reload during the yields must not re-read our own write
    const positions = new Map(doc.addedPositions());
    const rebuilt = new Map<string, KeyRecord>();
    const added: Array<[string, KeyRecord]> = [];
    for (const hash of doc.touched) {
      const at = this.positions.get(hash) ?? positions.get(hash);
      if (at !== undefined) {
        const record = toKeyRecord(doc.raws[at]!, hash, this.keyPrefix);
        if (this.index.has(hash)) rebuilt.set(hash, record);
        else added.push([hash, record]); // new keys go straight into the index (few; size() counts them)
      }
      if (slicer.due()) await slicer.yield();
    }
    this.raws = doc.raws;
    doc.commitPositions(this.positions);
    for (const [hash, record] of added) this.index.set(hash, record);
    this.fresh = rebuilt.size > 0 ? rebuilt : undefined;
  }

  /** Folds the `fresh` layer into the index in slices (the same records: invisible to readers). */
  private async mergeFresh(slicer: WorkSlicer): Promise<void> {
    const fresh = this.fresh;
    if (!fresh) return;
    for (const [hash, record] of fresh) {
      if (this.fresh !== fresh) return; // a reload installed newer state meanwhile
      this.index.set(hash, record);
      if (slicer.due()) await slicer.yield();
    }
    if (this.fresh === fresh) this.fresh = undefined;
  }

  private async reloadIfChanged(): Promise<void> {
    const generation = this.generation;
    try {
      if ((await statSignature(this.path)) === this.known.signature) return;
      // A write is re-reading the file under the lock: its state is this file's (or newer).
      if (this.rereading) return await this.rereading.catch(() => undefined);
      let read: { snapshot: FileSnapshot; state: StoreState };
      try {
        // In slices: every process sharing a large store re-reads it after each other's writes.
        read = await this.readState(new WorkSlicer(this.sliceBudgetMs), (snapshot) => {
          // Our own write, or a write of ours since this began (newer than what was read).
          if (snapshot.signature === this.known.signature || generation !== this.generation) throw new StaleRead();
        });
      } catch (err) {
        if (err instanceof StaleRead) return;
        throw err;
      }
      this.install(read.state, read.snapshot);
      this.problems.clear();
    } catch (err) {
      this.problems.report(
        err instanceof StoreError
          ? err
          : this.error('ERR_DAYMIND_STORE_UNREADABLE', `cannot read the key store ${this.path}: ${describeError(err)}`, err),
      );
    }
  }

  /**
   * Reads the file and builds its state in slices, with `check` (which throws to give up) before
   * and after each step. The snapshot's file is closed when this throws.
   */
  private async readState(
    slicer: WorkSlicer,
    check: (snapshot: FileSnapshot) => void = () => undefined,
  ): Promise<{ snapshot: FileSnapshot; state: StoreState }> {
    const snapshot = await readWithSignature(this.path);
    try {
      check(snapshot);
      const raws = await this.parseInSlices(snapshot.bytes, slicer);
      check(snapshot);
      const state = await buildStateInSlices(raws, snapshot.bytes, this.context, slicer);
      check(snapshot);
      return { snapshot, state };
    } catch (err) {
      await closeOpenFile(snapshot.handle);
      throw err;
    }
  }

  /**
   * Under the lock, takes the file another process wrote as the state (in slices), before a write
   * goes onto it. The generation bump stops a slower reload from installing an older version.
   */
  private async rereadLocked(slicer: WorkSlicer): Promise<void> {
    const { snapshot, state } = await this.readState(slicer);
    this.generation++;
    this.install(state, snapshot);
  }

  /**
   * Runs `change` on the current document under the lock and writes the result atomically. The
   * file is re-read only when another writer changed it since this process last read or wrote it.
   */
  private mutate<T>(change: (doc: StoreDoc, slicer: WorkSlicer) => T | Promise<T>, onInstalled?: () => void): Promise<T> {
    const run = this.writeChain.then(() => this.mutateLocked(change, onInstalled));
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  private async mutateLocked<T>(change: (doc: StoreDoc, slicer: WorkSlicer) => T | Promise<T>, onInstalled?: () => void): Promise<T> {
    let release: () => Promise<void>;
    try {
      release = await acquireLock(this.path, (err) =>
        this.problems.report(this.error('ERR_DAYMIND_STORE_LOCK', `lost the lock on ${this.path}: ${err.message}`, err)),
      );
    } catch (err) {
      throw this.error('ERR_DAYMIND_STORE_LOCK', `cannot lock the key store ${this.path}: ${describeError(err)}`, err);
    }
    try {
      // One slicer for the write's work on the event loop: re-read, apply, encode, install.
      const slicer = new WorkSlicer(this.sliceBudgetMs);
      try {
        // A reload under way installs the file as it is now (no one else writes while we hold the
        // lock) or gives up: wait for it rather than parse the same file twice.
        await this.refresh.idle();
        if ((await statSignature(this.path)) !== this.known.signature) {
          this.rereading = this.rereadLocked(slicer);
          await this.rereading.finally(() => (this.rereading = undefined));
        }
      } catch (err) {
        if (err instanceof StoreError) throw err;
        throw this.error('ERR_DAYMIND_STORE_UNREADABLE', `cannot read the key store ${this.path}: ${describeError(err)}`, err);
      }
      // The state now is what the file holds (a reload finishing meanwhile installs the same
      // version: no other process writes while we hold the lock), and the change goes onto it.
      const doc = new StoreDoc(this.raws, this.positions, this.hashCache);
      const result = await change(doc, slicer);
      let written: { signature: string; handle: OpenFile };
      try {
        written = await writeAtomicKeepingOpen(this.path, await serializeRecords(doc.raws, this.slices, slicer));
      } catch (err) {
        throw this.error('ERR_DAYMIND_STORE_WRITE', `cannot write the key store ${this.path}: ${describeError(err)}`, err);
      }
      this.generation++;
      await this.installEdits(doc, written.handle, written.signature, slicer);
      onInstalled?.();
      this.problems.clear();
      await this.mergeFresh(slicer);
      return result;
    } finally {
      await release().catch(() => undefined);
    }
  }
}
