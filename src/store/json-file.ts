import { closeSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DaymindError, StoreError, describeError, type DaymindErrorCode } from '../errors';
import { DEFAULT_KEY_PREFIX } from '../keys';
import { DEFAULT_STORE_PATH } from '../settings';
import { OnceReporter } from '../report-once';
import { coalesced } from './coalesce';
import { EncodedSlices, StoreDoc, serializeRecords } from './json-doc';
import { parseRecordsInSlices } from './parse-in-slices';
import {
  addBatchesInSlices,
  applyJournal,
  applyJournalInSlices,
  buildState,
  buildStateInSlices,
  type StateContext,
  type StoreState,
} from './store-state';
import {
  JOURNAL_SUFFIX,
  JournalMismatch,
  appendAt,
  journalHeader,
  journalLineInSlices,
  parseJournal,
  type JournalContent,
} from './usage-journal';
import { SLICE_BUDGET_MS, WorkSlicer } from './slicer';
import {
  KnownVersion,
  closeOpenFile,
  createIfMissingSync,
  readIfAny,
  readIfAnySync,
  readWithSignature,
  readWithSignatureSync,
  statSignatureIfAnySync,
  removeDurably,
  statSignature,
  statSignatureIfAny,
  writeAtomicKeepingOpen,
  type OpenFile,
  type FileSnapshot,
} from './file-io';
import { LockLost, acquireLock, type FileLock } from './lock';
import { removeTempFilesSync } from './temp-files';
import { applyKeyChanges, createdKey, markRevoked, newRawRecord, parseRecords, rotateRaw, toKeyRecord, type RawRecord } from './record';
import type { CreatedKey, KeyChanges, KeyRecord, KeyStore, NewKeyInput, RotatedKey, UsageBatch, UsageDelta } from './types';

export { DEFAULT_STORE_PATH };

/** How many times a write starts again after losing the lock before it gives up (see mutate). */
const LOCK_LOST_ATTEMPTS = 3;

/** A re-read that lost a race with a write of this process: dropped. */
class StaleRead extends Error {}

/** A store file as read, with its usage journal if it has one. */
interface ReadFiles {
  snapshot: FileSnapshot;
  journal: { snapshot: FileSnapshot; content: JournalContent } | undefined;
}

/** The journal read with a store file, when it goes with that version of the file (else it is ignored). */
function applicableJournal({ snapshot, journal }: ReadFiles): JournalContent | undefined {
  return journal?.content.store === snapshot.signature ? journal.content : undefined;
}

/**
 * Whether a read may have fallen between the two steps of a fold (see {@link READ_ATTEMPTS}),
 * before the file is looked at again: attempts are left and the journal read does not go with
 * the file read.
 */
function mayHaveMissedFold(attempt: number, files: ReadFiles): boolean {
  return attempt < READ_ATTEMPTS && !applicableJournal(files);
}

/** Closes the files of a read: the store file and its journal, if any. */
function closeReadSync({ snapshot, journal }: ReadFiles): void {
  closeSync(snapshot.handle);
  if (journal) closeSync(journal.snapshot.handle);
}

/** closeReadSync(), asynchronously. */
async function closeRead({ snapshot, journal }: ReadFiles): Promise<void> {
  await closeOpenFile(snapshot.handle);
  if (journal) await closeOpenFile(journal.snapshot.handle);
}

/** How a write goes: a usage flush may go to the journal; a fold rewrites only when there is a journal. */
interface WriteOptions {
  kind?: 'usage' | 'rewrite' | 'fold';
  /** For a usage flush: the deltas the change applied (the journal line). */
  applied?: readonly UsageDelta[];
  /** Called once the change is the state requests see. */
  onInstalled?: () => void;
}

export interface UsageJournalOptions {
  /** Stores whose file is smaller than this (in bytes) are rewritten on every flush, as without a journal. Default 1 MiB. */
  minStoreBytes?: number;
  /** How long after its first line a journal is folded into the store file, in ms. Default 60,000 (a minute). */
  foldAfterMs?: number;
}

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
  /**
   * A usage flush of a large store appends its counts to `<path>.journal` instead of rewriting
   * the whole file, and the journal is folded into the file now and then (see
   * docs/how-it-works.md). `false`: every flush rewrites the file.
   */
  usageJournal?: UsageJournalOptions | false;
  /** The clock, in ms since the epoch, for every time the store stamps or compares. Default `Date.now`. */
  now?: () => number;
}

/**
 * The file is read, then its journal. When the journal read does not go with the file read (none,
 * or one naming another version) and the file was replaced in between, another process folded
 * the journal into a new file between the two reads: the file read lacks the usage the journal
 * held, so both are read again, up to this many times in all (then taken as they are; a reload
 * sees the change within reloadIntervalMs).
 */
const READ_ATTEMPTS = 5;
const DEFAULT_JOURNAL = { minStoreBytes: 1 << 20, foldAfterMs: 60_000 };

/**
 * What is wrong with a `usageJournal` option, naming the part at fault (`usageJournal` or
 * `usageJournal.<name>`); undefined when it is valid. daymindAuth() and the store both check with it.
 */
export function usageJournalProblem(value: unknown): { option: string; message: string } | undefined {
  if (value === undefined || value === false) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { option: 'usageJournal', message: `must be false or { minStoreBytes, foldAfterMs }, got ${JSON.stringify(value)}` };
  }
  for (const [name, n] of Object.entries(value)) {
    if (name !== 'minStoreBytes' && name !== 'foldAfterMs')
      return { option: `usageJournal.${name}`, message: 'is not an option of usageJournal' };
    if (n !== undefined && !(typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
      return { option: `usageJournal.${name}`, message: `must be a whole number of 0 or more, got ${JSON.stringify(n)}` };
    }
  }
  return undefined;
}

function journalOptions(value: JsonFileKeyStoreOptions['usageJournal']): Required<UsageJournalOptions> | undefined {
  const problem = usageJournalProblem(value);
  if (problem) throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', `${problem.option}: ${problem.message}`);
  if (value === false) return undefined;
  return {
    minStoreBytes: value?.minStoreBytes ?? DEFAULT_JOURNAL.minStoreBytes,
    foldAfterMs: value?.foldAfterMs ?? DEFAULT_JOURNAL.foldAfterMs,
  };
}

/**
 * Keys in one JSON file (an array of records, the existing deployments' format), held in memory
 * and indexed by key hash. The request path only reads memory.
 *
 * Every write (usage, create, revoke) takes the file lock (lock.ts), re-reads the file, applies
 * its change to what it read (so other writers' counts, keys and revocations are kept) and
 * replaces the file atomically. A file that cannot be parsed is reported and never written.
 */
export class JsonFileKeyStore implements KeyStore {
  readonly path: string;
  private readonly reloadIntervalMs: number;
  private readonly keyPrefix: string;
  private readonly now: () => number;
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
  /** Size of that file, in bytes. */
  private storeBytes = 0;
  /** The usage journal (see usage-journal.ts): `<path>.journal`. */
  readonly journalPath: string;
  private readonly journalOptions: Required<UsageJournalOptions> | undefined;
  /** The journal version the state comes from, held open; its signature is '' when there was none. */
  private readonly knownJournal = new KnownVersion();
  /** The known journal when it goes with the known file: where the next line goes, and when it began. */
  private journal: { length: number; createdMs: number } | undefined;
  /** Whether this process appended to the journal since it was last folded (close() folds it then). */
  private appended = false;
  private folding: Promise<void> | undefined;
  /** Whether this process holds the file's lock (a write under way). */
  private locked = false;
  /** Set by close(): no fold starts from the timer after it. */
  private closing = false;
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
    this.now = options.now ?? Date.now;
    this.journalPath = this.path + JOURNAL_SUFFIX;
    this.journalOptions = journalOptions(options.usageJournal);
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
    // What writers killed mid-write left beside the file (whole copies of it): see temp-files.ts.
    removeTempFilesSync(this.path);
    const files = this.readFilesSync();
    try {
      this.installRead(this.parse(files.snapshot.bytes.toString('utf8')), files);
    } catch (err) {
      closeReadSync(files);
      throw err;
    }
  }

  /** The file and its journal as one consistent pair (see {@link READ_ATTEMPTS}), read synchronously. */
  private readFilesSync(): ReadFiles {
    for (let attempt = 1; ; attempt++) {
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
      let journal: ReadFiles['journal'];
      let again: boolean;
      try {
        journal = this.readJournalSync();
        again = mayHaveMissedFold(attempt, { snapshot, journal }) && statSignatureIfAnySync(this.path) !== snapshot.signature;
      } catch (err) {
        closeReadSync({ snapshot, journal });
        throw err;
      }
      if (!again) return { snapshot, journal };
      closeReadSync({ snapshot, journal });
    }
  }

  async init(): Promise<void> {
    if (this.timer || this.reloadIntervalMs <= 0) return;
    this.timer = setInterval(() => void this.refresh().then(() => this.foldIfDue()), this.reloadIntervalMs);
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
      const { key, raw } = newRawRecord(input, this.now(), this.keyPrefix);
      doc.add(raw);
      return createdKey(key, raw, this.keyPrefix);
    });
  }

  async revoke(keyHash: string): Promise<KeyRecord | undefined> {
    return this.mutate((doc) => {
      const raw = doc.edit(keyHash);
      if (!raw) return undefined;
      markRevoked(raw, this.now());
      return toKeyRecord(raw, keyHash, this.keyPrefix);
    });
  }

  async rotate(keyHash: string, graceSeconds: number): Promise<RotatedKey | undefined> {
    return this.mutate((doc) => {
      const old = doc.edit(keyHash);
      if (!old) return undefined;
      const pair = [old];
      const rotated = rotateRaw(pair, (r) => r === old, keyHash, graceSeconds, this.keyPrefix, this.now())!;
      doc.add(pair[1]!);
      return rotated;
    });
  }

  async update(keyHash: string, changes: KeyChanges): Promise<KeyRecord | undefined> {
    return this.mutate((doc) => {
      const raw = doc.edit(keyHash);
      if (!raw) return undefined;
      applyKeyChanges(raw, changes, this.now());
      return toKeyRecord(raw, keyHash, this.keyPrefix);
    });
  }

  async list(): Promise<KeyRecord[]> {
    await this.refresh();
    return [...this.index].map(([hash, record]) => ({ ...(this.fresh?.get(hash) ?? record) }));
  }

  async applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    if (deltas.length === 0) return;
    const applied: UsageDelta[] = [];
    const dropped = await this.mutate(
      async (doc, slicer) => {
        applied.length = 0; // a write started again after losing the lock applies them afresh
        let missing = 0;
        for (const delta of deltas) {
          if (doc.addUsage(delta)) applied.push(delta);
          else missing += delta.units;
          // A flush of many keys lets requests in now and then while it is applied.
          if (slicer.due()) await slicer.yield();
        }
        return missing;
      },
      { kind: 'usage', applied, onInstalled: batch?.onApplied },
    );
    if (dropped > 0) {
      this.problems.report(
        this.error('ERR_DAYMIND_USAGE_FLUSH', `${dropped} usage unit(s) belong to keys no longer in ${this.path}; they were not recorded`),
      );
    }
  }

  /**
   * Folds the usage journal into the store file now (one rewrite; the journal is removed). Does
   * nothing when there is no journal. Runs on its own when a journal is due, and in close().
   */
  async fold(): Promise<void> {
    await this.mutate(() => undefined, { kind: 'fold' });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.folding;
    await this.writeChain;
    // A stopped server leaves the whole of its usage in the store file itself.
    if (this.appended) await this.fold().catch((err: unknown) => this.problems.report(this.asStoreError(err)));
    await this.refresh.idle();
    await this.known.close();
    await this.knownJournal.close();
  }

  /** Folds the journal once it is due (from the reload timer), unless a fold is under way. */
  private foldIfDue(): void {
    if (this.closing || this.folding || !this.journal || !this.foldDue(this.journalOptions?.foldAfterMs ?? 0)) return;
    this.folding = this.fold()
      .catch((err: unknown) => this.problems.report(this.asStoreError(err)))
      .finally(() => (this.folding = undefined));
  }

  private asStoreError(err: unknown): StoreError {
    return err instanceof StoreError
      ? err
      : this.error('ERR_DAYMIND_STORE_WRITE', `cannot write the key store ${this.path}: ${describeError(err)}`, err);
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

  private journalError(code: DaymindErrorCode, message: string, cause?: unknown): StoreError {
    return new StoreError(code, this.journalPath, message, cause === undefined ? undefined : { cause });
  }

  /**
   * The journal as read, parsed. A journal that does not parse is an error naming it (and is never
   * written); its file is then closed.
   */
  private journalOf(snapshot: FileSnapshot | undefined, from = 0): ReadFiles['journal'] {
    if (!snapshot) return undefined;
    try {
      return { snapshot, content: parseJournal(snapshot.bytes, from) };
    } catch (err) {
      closeSync(snapshot.handle);
      throw this.journalError(
        'ERR_DAYMIND_STORE_CORRUPT',
        `the usage journal ${this.journalPath} of the key store ${this.path} is corrupt: ${describeError(err)}. Fix or remove it (the usage it holds is then lost); daymind-auth will not write to the store until it parses.`,
        err,
      );
    }
  }

  private journalUnreadable(err: unknown): StoreError {
    return this.journalError(
      'ERR_DAYMIND_STORE_UNREADABLE',
      `cannot read the usage journal ${this.journalPath}: ${describeError(err)}`,
      err,
    );
  }

  private readJournalSync(): ReadFiles['journal'] {
    let snapshot: FileSnapshot | undefined;
    try {
      snapshot = readIfAnySync(this.journalPath);
    } catch (err) {
      throw this.journalUnreadable(err);
    }
    return this.journalOf(snapshot);
  }

  /** The journal, if there is one, parsed from `from` (see parseJournal). */
  private async readJournal(from = 0): Promise<ReadFiles['journal']> {
    let snapshot: FileSnapshot | undefined;
    try {
      snapshot = await readIfAny(this.journalPath);
    } catch (err) {
      throw this.journalUnreadable(err);
    }
    return this.journalOf(snapshot, from);
  }

  /**
   * The journal on disk when it only adds lines to the state's (the same version of the file, the
   * same journal or one begun since for this version), parsed from where the state's ends; else
   * undefined, and the files are read whole.
   */
  private async journalTail(): Promise<ReadFiles['journal']> {
    if ((await statSignature(this.path)) !== this.known.signature) return undefined;
    const known = this.journal;
    const journal = await this.readJournal(known?.length ?? 0);
    if (!journal) return undefined;
    const { content } = journal;
    const extendsKnown = known ? content.createdMs === known.createdMs && content.length >= known.length : true;
    if (content.store === this.known.signature && extendsKnown) return journal;
    await closeOpenFile(journal.snapshot.handle);
    return undefined;
  }

  /**
   * Applies the new lines of the journal (see journalTail) as a write of this process would
   * apply them, and takes that journal as the known one. `check` (which throws to give up) runs
   * before anything is installed.
   */
  private async applyTail(
    journal: NonNullable<ReadFiles['journal']>,
    slicer: WorkSlicer,
    check: () => void = () => undefined,
  ): Promise<void> {
    const doc = new StoreDoc(this.raws, this.positions, this.hashCache);
    try {
      await addBatchesInSlices(doc, journal.content.batches, slicer);
      check();
    } catch (err) {
      await closeOpenFile(journal.snapshot.handle);
      throw err;
    }
    this.knownJournal.set(journal.snapshot.handle, journal.snapshot.signature);
    this.journal = { length: journal.content.length, createdMs: journal.content.createdMs };
    this.generation++;
    await this.installEdits(doc, slicer);
    await this.mergeFresh(slicer);
  }

  /**
   * Brings the state up to the files on disk: only the journal's new lines when that is all that
   * changed (as when other processes flush usage to a large store), else a re-read of both.
   */
  private async catchUpLocked(slicer: WorkSlicer): Promise<void> {
    const tail = await this.journalTail();
    if (tail) await this.applyTail(tail, slicer);
    else await this.rereadLocked(slicer);
  }

  /** Whether the files read are the versions the state already comes from. */
  private isKnown(files: ReadFiles): boolean {
    return files.snapshot.signature === this.known.signature && (files.journal?.snapshot.signature ?? '') === this.knownJournal.signature;
  }

  /** Whether the files on disk are still the versions the state comes from (two stats). */
  private async unchanged(): Promise<boolean> {
    return (
      (await statSignature(this.path)) === this.known.signature &&
      (await statSignatureIfAny(this.journalPath)) === this.knownJournal.signature
    );
  }

  /** Takes a document as read from the file as the state (built in one step: the first load). */
  private installRead(raws: RawRecord[], files: ReadFiles): void {
    const state = buildState(raws, files.snapshot.bytes, this.context);
    const journal = applicableJournal(files);
    if (journal) applyJournal(state, journal.batches, this.context);
    this.install(state, files);
  }

  /**
   * Takes the state of a document as just read from the file (with its journal applied, when it
   * goes with this version of the file); the files' versions become the known ones.
   */
  private install(state: StoreState, { snapshot, journal }: ReadFiles): void {
    this.index = state.index;
    this.fresh = undefined; // a merge still running stops (see mergeFresh)
    this.unchecksummed = state.unchecksummed;
    this.raws = state.raws;
    this.positions = state.positions;
    this.slices.use(state.encoded);
    this.known.set(snapshot.handle, snapshot.signature);
    this.storeBytes = snapshot.bytes.length;
    if (journal) this.knownJournal.set(journal.snapshot.handle, journal.snapshot.signature);
    else void this.knownJournal.close();
    const applies = applicableJournal({ snapshot, journal });
    this.journal = applies && { length: applies.length, createdMs: applies.createdMs };
  }

  /**
   * Takes a document this process wrote as the state, rebuilding only the records it touched:
   * built in slices with yields between them, then made visible at once as the `fresh` layer
   * (so live views never see half of a batch). mergeFresh folds that layer into the index later.
   */
  private async installEdits(doc: StoreDoc, slicer: WorkSlicer): Promise<void> {
    const positions = new Map(doc.addedPositions());
    const rebuilt = new Map<string, KeyRecord>();
    const added: Array<[string, KeyRecord]> = [];
    for (const hash of doc.touched) {
      const at = this.positions.get(hash) ?? positions.get(hash);
      if (at !== undefined) {
        const record = toKeyRecord(doc.record(at)!, hash, this.keyPrefix);
        if (this.index.has(hash)) rebuilt.set(hash, record);
        else added.push([hash, record]); // new keys go straight into the index (few; size() counts them)
      }
      if (slicer.due()) await slicer.yield();
    }
    this.raws = doc.installInto(this.raws);
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
      if (await this.unchanged()) return;
      // A write is re-reading the file under the lock: its state is this file's (or newer).
      if (this.rereading) return await this.rereading.catch(() => undefined);
      // Only new journal lines: applied on their own, unless a write of ours is under way (it
      // takes them in under the lock, and its own line must not be applied twice).
      const tail = this.locked ? undefined : await this.journalTail();
      if (tail) {
        try {
          await this.applyTail(tail, new WorkSlicer(this.sliceBudgetMs), () => {
            if (this.locked || generation !== this.generation) throw new StaleRead();
          });
        } catch (err) {
          if (err instanceof StaleRead) return;
          throw err;
        }
        this.problems.clear();
        return;
      }
      let read: { files: ReadFiles; state: StoreState };
      try {
        // In slices: every process sharing a large store re-reads it after each other's writes.
        read = await this.readState(new WorkSlicer(this.sliceBudgetMs), (files) => {
          // Our own write, or a write of ours since this began (newer than what was read).
          if (this.isKnown(files) || generation !== this.generation) throw new StaleRead();
        });
      } catch (err) {
        if (err instanceof StaleRead) return;
        throw err;
      }
      this.install(read.state, read.files);
      this.problems.clear();
    } catch (err) {
      this.problems.report(
        err instanceof StoreError
          ? err
          : this.error('ERR_DAYMIND_STORE_UNREADABLE', `cannot read the key store ${this.path}: ${describeError(err)}`, err),
      );
    }
  }

  /** The file and its journal as one consistent pair (see {@link READ_ATTEMPTS}). */
  private async readFiles(): Promise<ReadFiles> {
    for (let attempt = 1; ; attempt++) {
      const snapshot = await readWithSignature(this.path);
      let journal: ReadFiles['journal'];
      let again: boolean;
      try {
        journal = await this.readJournal();
        again = mayHaveMissedFold(attempt, { snapshot, journal }) && (await statSignatureIfAny(this.path)) !== snapshot.signature;
      } catch (err) {
        await closeRead({ snapshot, journal });
        throw err;
      }
      if (!again) return { snapshot, journal };
      await closeRead({ snapshot, journal });
    }
  }

  /**
   * Reads the file and builds its state in slices, with `check` (which throws to give up) before
   * and after each step. The snapshot's file is closed when this throws.
   */
  private async readState(
    slicer: WorkSlicer,
    check: (files: ReadFiles) => void = () => undefined,
  ): Promise<{ files: ReadFiles; state: StoreState }> {
    // The file first, then its journal: a fold renames the new file in before it removes the
    // journal, so a journal naming an older version is one this file already holds (or one a
    // tool that does not know journals left behind); a fold between the two reads is caught by
    // readFiles, which then reads both again.
    const files = await this.readFiles();
    const { snapshot } = files;
    try {
      check(files);
      const raws = await this.parseInSlices(snapshot.bytes, slicer);
      check(files);
      const state = await buildStateInSlices(raws, snapshot.bytes, this.context, slicer);
      const applies = applicableJournal(files);
      if (applies) await applyJournalInSlices(state, applies.batches, this.context, slicer);
      check(files);
      return { files, state };
    } catch (err) {
      await closeRead(files);
      throw err;
    }
  }

  /**
   * Under the lock, takes the file another process wrote as the state (in slices), before a write
   * goes onto it. The generation bump stops a slower reload from installing an older version.
   */
  private async rereadLocked(slicer: WorkSlicer): Promise<void> {
    const { files, state } = await this.readState(slicer);
    this.generation++;
    this.install(state, files);
  }

  /**
   * Runs `change` on the current document under the lock and writes the result: a usage flush of
   * a large store as a line of the journal, anything else (and a journal due for folding) as a
   * rewrite of the file, atomically, that folds the journal in and removes it. The files are
   * re-read only when another writer changed them since this process last read or wrote them.
   */
  private mutate<T>(change: (doc: StoreDoc, slicer: WorkSlicer) => T | Promise<T>, how: WriteOptions = {}): Promise<T> {
    const run = this.writeChain.then(() => this.mutateAgainIfLost(change, how));
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  /**
   * mutateLocked(), started again from the lock when it lost the lock before it wrote (the
   * process was held up past the lock's lease, and another writer may have taken it over): the
   * files are read again and the change applied to them afresh. Reported, as it should not happen.
   */
  private async mutateAgainIfLost<T>(change: (doc: StoreDoc, slicer: WorkSlicer) => T | Promise<T>, how: WriteOptions): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.mutateLocked(change, how);
      } catch (err) {
        if (!(err instanceof LockLost)) throw err;
        const last = attempt === LOCK_LOST_ATTEMPTS;
        const error = this.error(
          'ERR_DAYMIND_STORE_LOCK',
          `${err.message}; nothing was written${last ? `, ${attempt} times: giving up` : ', writing again'}`,
          err,
        );
        if (last) throw error;
        this.problems.report(error);
      }
    }
  }

  private async mutateLocked<T>(change: (doc: StoreDoc, slicer: WorkSlicer) => T | Promise<T>, how: WriteOptions): Promise<T> {
    const kind = how.kind ?? 'rewrite';
    let lock: FileLock;
    try {
      lock = await acquireLock(this.path);
    } catch (err) {
      throw this.error('ERR_DAYMIND_STORE_LOCK', `cannot lock the key store ${this.path}: ${describeError(err)}`, err);
    }
    this.locked = true;
    try {
      // One slicer for the write's work on the event loop: re-read, apply, encode, install.
      const slicer = new WorkSlicer(this.sliceBudgetMs);
      try {
        // A reload under way installs the file as it is now (no one else writes while we hold the
        // lock) or gives up: wait for it rather than parse the same file twice.
        await this.refresh.idle();
        if (!(await this.unchanged())) {
          this.rereading = this.catchUpLocked(slicer);
          await this.rereading.finally(() => (this.rereading = undefined));
        }
      } catch (err) {
        if (err instanceof StoreError) throw err;
        throw this.error('ERR_DAYMIND_STORE_UNREADABLE', `cannot read the key store ${this.path}: ${describeError(err)}`, err);
      }
      // Another process folded the journal meanwhile: nothing left to do.
      if (kind === 'fold' && !this.journal) return undefined as T;
      // The state now is what the files hold (a reload finishing meanwhile installs the same
      // version: no other process writes while we hold the lock), and the change goes onto it.
      const doc = new StoreDoc(this.raws, this.positions, this.hashCache);
      const result = await change(doc, slicer);
      if (kind === 'usage' && this.journalTakes()) await this.appendUsage(how.applied ?? [], slicer, lock);
      else await this.rewrite(doc, slicer, lock);
      this.generation++;
      await this.installEdits(doc, slicer);
      how.onInstalled?.();
      this.problems.clear();
      await this.mergeFresh(slicer);
      return result;
    } finally {
      this.locked = false;
      await lock.release();
    }
  }

  /** Whether a usage flush goes to the journal: a large store, and no journal due for folding. */
  private journalTakes(): boolean {
    const options = this.journalOptions;
    if (!options || this.storeBytes < options.minStoreBytes) return false;
    return !this.journal || (!this.foldDue(options.foldAfterMs) && this.journal.length < Math.max(this.storeBytes, 1 << 16));
  }

  /** Whether the journal is due for folding (a journal from the future, after a clock change, is too). */
  private foldDue(foldAfterMs: number): boolean {
    const age = Date.now() - (this.journal?.createdMs ?? Infinity);
    return age < 0 || age >= foldAfterMs;
  }

  /**
   * Appends the deltas applied as one journal line (fdatasync'd), or starts a journal for the
   * known file with them (atomically: a reader sees no journal or the whole first line).
   */
  private async appendUsage(applied: readonly UsageDelta[], slicer: WorkSlicer, lock: FileLock): Promise<void> {
    if (applied.length === 0) return;
    const line = await journalLineInSlices(applied, slicer);
    let written: { handle: OpenFile; signature: string };
    let journal: { length: number; createdMs: number };
    try {
      // Read before the write: a reload of the files during it installs what it read, this line
      // included, as the known journal.
      const known = this.journal;
      if (known) {
        written = await appendAt(this.journalPath, known.length, line, lock);
        journal = { length: known.length + Buffer.byteLength(line), createdMs: known.createdMs };
      } else {
        const createdMs = Date.now();
        const text = journalHeader(this.known.signature, createdMs) + line;
        written = await writeAtomicKeepingOpen(this.journalPath, text, lock);
        journal = { length: Buffer.byteLength(text), createdMs };
      }
    } catch (err) {
      if (err instanceof LockLost) throw err;
      // Forget the journal's version, so that the next write reads the files again first.
      if (err instanceof JournalMismatch) await this.knownJournal.close();
      throw this.journalError('ERR_DAYMIND_STORE_WRITE', `cannot write the usage journal ${this.journalPath}: ${describeError(err)}`, err);
    }
    // First: a reload during the yields that follow must not re-read our own write.
    this.knownJournal.set(written.handle, written.signature);
    this.journal = journal;
    this.appended = true;
  }

  /** Replaces the file with the document (atomically), then removes the journal it now holds. */
  private async rewrite(doc: StoreDoc, slicer: WorkSlicer, lock: FileLock): Promise<void> {
    let written: { signature: string; handle: OpenFile };
    let bytes = 0;
    try {
      const parts = await serializeRecords(doc.raws, this.slices, slicer);
      for (const part of parts) bytes += part.length;
      written = await writeAtomicKeepingOpen(this.path, parts, lock);
    } catch (err) {
      if (err instanceof LockLost) throw err;
      throw this.error('ERR_DAYMIND_STORE_WRITE', `cannot write the key store ${this.path}: ${describeError(err)}`, err);
    }
    // First: a reload during the yields that follow must not re-read our own write.
    this.known.set(written.handle, written.signature);
    this.storeBytes = bytes;
    this.journal = undefined;
    this.appended = false;
    if (this.knownJournal.signature === '') return;
    // The journal names the file replaced: ignored by readers from now on, even if it stays. So it
    // stays when the lock was lost since the rename: the journal there may be the next holder's.
    try {
      if (lock.held()) await removeDurably(this.journalPath, lock);
    } catch (err) {
      this.problems.report(
        this.journalError(
          'ERR_DAYMIND_STORE_WRITE',
          `cannot remove the usage journal ${this.journalPath} (the key store ${this.path} holds its usage now): ${describeError(err)}`,
          err,
        ),
      );
    }
    await this.knownJournal.close();
  }
}
