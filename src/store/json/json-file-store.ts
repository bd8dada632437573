import { closeSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DaymindError, StoreError, describeError, type DaymindErrorCode } from '../../errors';
import { DEFAULT_KEY_PREFIX } from '../../keys';
import { DEFAULT_STORE_PATH } from '../../config/setting-values';
import { OnceReporter } from '../../internal/report-once';
import { oneRunAtATime } from '../../internal/one-run-at-a-time';
import { StoreDoc, buildState, installEdits, serializeRecords, type StateContext, type StoreState } from './doc';
import { JOURNAL_SUFFIX, parseJournal } from './leftover-journal';
import {
  KnownVersion,
  createIfMissingSync,
  readVersion,
  removeDurably,
  signatureIfAny,
  writeAtomicKeepingOpen,
  type FileVersion,
} from '../../internal/fs/file-io';
import { LockLost, acquireLock, type FileLock } from '../../internal/fs/lock';
import { removeTempFilesSync } from '../../internal/fs/temp-files';
import { usageJournalProblem, type JsonFileKeyStoreOptions } from './options';
import { applyKeyChanges, createdKey, markRevoked, newRawRecord, rotateRaw, toKeyRecord, type RawRecord } from '../record';
import { parseRecords } from '../record-check';
import type { CreatedKey, KeyChanges, KeyRecord, KeyStore, NewKeyInput, RotatedKey, UsageBatch, UsageDelta } from '../types';

export { usageJournalProblem, type JsonFileKeyStoreOptions, type UsageJournalOptions } from './options';

/** How many times a write starts again after losing the lock before it gives up (see mutate). */
const LOCK_LOST_ATTEMPTS = 3;

/** The store file and its leftover journal as read (see leftover-journal.ts), and their state. */
interface Loaded {
  file: FileVersion;
  journal: FileVersion | undefined;
  state: StoreState;
}

/**
 * Keys in one JSON file (an array of records, the existing deployments' format), held in memory
 * and indexed by key hash. The request path only reads memory. Meant for up to about 10,000 keys
 * on one host (see docs/scaling.md); larger or multi-host deployments use Redis.
 *
 * Every write (usage, create, revoke) takes the file lock (lock.ts), re-reads the file when
 * another process changed it, applies its change to that (so other writers' counts, keys and
 * revocations are kept) and replaces the file atomically. A file that cannot be parsed is
 * reported and never written.
 */
export class JsonFileKeyStore implements KeyStore {
  readonly path: string;
  /** Where an earlier version's usage journal would be (see leftover-journal.ts). */
  readonly journalPath: string;
  private readonly reloadIntervalMs: number;
  private readonly keyPrefix: string;
  private readonly now: () => number;
  private readonly context: StateContext;
  private state: StoreState;
  /** The file version the state comes from, held open (see KnownVersion). */
  private readonly known = new KnownVersion();
  /** The leftover journal read with it, held open; its signature is '' when there was none. */
  private readonly knownJournal = new KnownVersion();
  /** Whether this process holds the file's lock (a write under way). */
  private locked = false;
  private closing = false;
  private folding: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writeChain: Promise<unknown> = Promise.resolve();
  /** Background problems, reported once while they last, not on every poll. */
  private readonly problems: OnceReporter<StoreError>;

  /** Loads the file; throws a {@link StoreError} naming it when it is unusable. */
  constructor(options: JsonFileKeyStoreOptions = {}) {
    this.path = resolve(options.path ?? DEFAULT_STORE_PATH);
    this.journalPath = this.path + JOURNAL_SUFFIX;
    this.reloadIntervalMs = options.reloadIntervalMs ?? 500;
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.now = options.now ?? Date.now;
    this.context = { hashCache: new Map(), keyPrefix: this.keyPrefix };
    this.problems = new OnceReporter(options.onError ?? ((err) => console.error(`[daymind-auth] ${err.message}`)));
    const problem = usageJournalProblem(options.usageJournal);
    if (problem) throw new DaymindError('ERR_DAYMIND_INVALID_INPUT', `${problem.option}: ${problem.message}`);
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
    const loaded = this.load();
    if (loaded instanceof StoreError) throw loaded;
    this.state = loaded.state;
    this.install(loaded);
  }

  async init(): Promise<void> {
    if (this.timer || this.reloadIntervalMs <= 0) return;
    this.timer = setInterval(() => void this.refresh().then(() => this.foldLeftover()), this.reloadIntervalMs);
    this.timer.unref();
  }

  get(keyHash: string): KeyRecord | undefined {
    return this.state.index.get(keyHash);
  }

  /** Number of records loaded. */
  size(): number {
    return this.state.index.size;
  }

  hasUnchecksummedKeys(): boolean {
    return this.state.unchecksummed.size > 0;
  }

  /** Whether the key with this hash is a plain key without the checksum format (older deployments). */
  isUnchecksummed(keyHash: string): boolean {
    return this.state.unchecksummed.has(keyHash);
  }

  /**
   * Re-reads the file if it changed. At most one check runs at a time and at most one more waits
   * behind it, so a burst of unknown keys costs a few `stat`s, not one read each.
   */
  readonly refresh = oneRunAtATime(() => this.reloadIfChanged());

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
    return [...this.state.index.values()].map((record) => ({ ...record }));
  }

  async applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    if (deltas.length === 0) return;
    const dropped = await this.mutate((doc) => {
      let missing = 0;
      for (const delta of deltas) if (!doc.addUsage(delta)) missing += delta.units;
      return missing;
    }, batch?.onApplied);
    if (dropped > 0) {
      this.problems.report(
        this.error('ERR_DAYMIND_USAGE_FLUSH', `${dropped} usage unit(s) belong to keys no longer in ${this.path}; they were not recorded`),
      );
    }
  }

  /**
   * Takes a usage journal an earlier version left (see leftover-journal.ts) into the store file
   * now, and removes it. Does nothing when there is none. Runs on its own from the reload timer.
   */
  async fold(): Promise<void> {
    await this.mutate(() => undefined, undefined, 'only-with-journal');
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.folding;
    await this.writeChain;
    await this.refresh.idle();
    await this.known.close();
    await this.knownJournal.close();
  }

  /** Folds a leftover journal (from the reload timer), unless a fold is under way. */
  private foldLeftover(): void {
    if (this.closing || this.folding || this.knownJournal.signature === '') return;
    this.folding = this.fold()
      .catch((err: unknown) => this.problems.report(this.asStoreError(err, 'ERR_DAYMIND_STORE_WRITE', 'write')))
      .finally(() => (this.folding = undefined));
  }

  /**
   * Reads the file and the journal an earlier version may have left (applied when it goes with
   * this version of the file), or the error naming the one that is unusable. The only way the
   * store reads its files: at start, on reload, and before a write when another process wrote.
   */
  private load(): Loaded | StoreError {
    let file: FileVersion | undefined;
    try {
      file = readVersion(this.path);
    } catch (err) {
      return this.error('ERR_DAYMIND_STORE_UNREADABLE', `cannot read the key store ${this.path}: ${describeError(err)}`, err);
    }
    if (!file) return this.error('ERR_DAYMIND_STORE_UNREADABLE', `there is no key store at ${this.path}`);
    let raws: RawRecord[];
    try {
      raws = parseRecords(file.bytes.toString('utf8'));
    } catch (err) {
      closeSync(file.handle);
      return this.error(
        'ERR_DAYMIND_STORE_CORRUPT',
        `the key store ${this.path} is corrupt: ${describeError(err)}. Fix or restore the file; daymind-auth will not write to it until it parses.`,
        err,
      );
    }
    let journal: FileVersion | undefined;
    try {
      journal = readVersion(this.journalPath);
    } catch (err) {
      closeSync(file.handle);
      return this.journalError(
        'ERR_DAYMIND_STORE_UNREADABLE',
        `cannot read the usage journal ${this.journalPath}: ${describeError(err)}`,
        err,
      );
    }
    const state = buildState(raws, this.context);
    if (!journal) return { file, journal, state };
    const content = parseJournal(journal.bytes.toString('utf8'));
    if ('problem' in content) {
      closeSync(file.handle);
      closeSync(journal.handle);
      return this.journalError(
        'ERR_DAYMIND_STORE_CORRUPT',
        `the usage journal ${this.journalPath} of the key store ${this.path} is corrupt: ${content.problem}. Fix or remove it (the usage it holds is then lost); daymind-auth will not write to the store until it parses.`,
      );
    }
    if (content.store === file.signature) {
      const doc = new StoreDoc(state, this.context.hashCache);
      for (const batch of content.batches) for (const delta of batch) doc.addUsage(delta);
      installEdits(state, doc, this.context);
    }
    return { file, journal, state };
  }

  /** Takes what load() read as the state; the files' versions become the known ones. */
  private install({ file, journal, state }: Loaded): void {
    this.state = state;
    this.known.set(file.handle, file.signature);
    if (journal) this.knownJournal.set(journal.handle, journal.signature);
    else void this.knownJournal.close();
  }

  /** Whether the files on disk are still the versions the state comes from (two stats), or why that is unknown. */
  private async unchanged(): Promise<boolean | StoreError> {
    try {
      return (
        (await signatureIfAny(this.path)) === this.known.signature &&
        (await signatureIfAny(this.journalPath)) === this.knownJournal.signature
      );
    } catch (err) {
      return this.error('ERR_DAYMIND_STORE_UNREADABLE', `cannot read the key store ${this.path}: ${describeError(err)}`, err);
    }
  }

  private async reloadIfChanged(): Promise<void> {
    const same = await this.unchanged();
    if (same instanceof StoreError) return this.problems.report(same);
    // A write of ours under way reads the files under the lock and installs them with its change.
    if (same || this.locked) return;
    const loaded = this.load();
    if (loaded instanceof StoreError) return this.problems.report(loaded);
    this.install(loaded);
    this.problems.clear();
  }

  /** Runs `change` on the current records under the lock and writes the result (see mutateLocked). */
  private mutate<T>(change: (doc: StoreDoc) => T, onInstalled?: () => void, only?: 'only-with-journal'): Promise<T> {
    const run = this.writeChain.then(() => this.mutateAgainIfLost(change, onInstalled, only));
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  /**
   * mutateLocked(), started again from the lock when it lost the lock before it wrote (the
   * process was held up past the lock's lease, and another writer may have taken it over): the
   * file is read again and the change applied to it afresh. Reported, as it should not happen.
   */
  private async mutateAgainIfLost<T>(change: (doc: StoreDoc) => T, onInstalled?: () => void, only?: 'only-with-journal'): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.mutateLocked(change, onInstalled, only);
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

  /**
   * Under the lock: reads the files again when another process changed them, applies `change` to
   * a working copy of the records, replaces the file with it atomically (removing a leftover
   * journal, which it now holds), and only then makes it the state requests see.
   */
  private async mutateLocked<T>(change: (doc: StoreDoc) => T, onInstalled?: () => void, only?: 'only-with-journal'): Promise<T> {
    let lock: FileLock;
    try {
      lock = await acquireLock(this.path);
    } catch (err) {
      throw this.error('ERR_DAYMIND_STORE_LOCK', `cannot lock the key store ${this.path}: ${describeError(err)}`, err);
    }
    this.locked = true;
    try {
      const same = await this.unchanged();
      if (same instanceof StoreError) throw same;
      if (!same) {
        const loaded = this.load();
        if (loaded instanceof StoreError) throw loaded;
        this.install(loaded);
      }
      const doc = new StoreDoc(this.state, this.context.hashCache);
      const result = change(doc);
      // A fold when another process folded the journal meanwhile: nothing left to do.
      if (only === 'only-with-journal' && this.knownJournal.signature === '') return result;
      await this.write(doc, lock);
      installEdits(this.state, doc, this.context);
      onInstalled?.();
      this.problems.clear();
      return result;
    } finally {
      this.locked = false;
      await lock.release();
    }
  }

  /** Replaces the file with the document (atomically), then removes a leftover journal it now holds. */
  private async write(doc: StoreDoc, lock: FileLock): Promise<void> {
    let written: { signature: string; handle: number };
    try {
      written = await writeAtomicKeepingOpen(this.path, serializeRecords(doc.raws), lock);
    } catch (err) {
      if (err instanceof LockLost) throw err;
      throw this.error('ERR_DAYMIND_STORE_WRITE', `cannot write the key store ${this.path}: ${describeError(err)}`, err);
    }
    this.known.set(written.handle, written.signature);
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

  private asStoreError(err: unknown, code: DaymindErrorCode, what: string): StoreError {
    return err instanceof StoreError ? err : this.error(code, `cannot ${what} the key store ${this.path}: ${describeError(err)}`, err);
  }

  private error(code: DaymindErrorCode, message: string, cause?: unknown): StoreError {
    return new StoreError(code, this.path, message, cause === undefined ? undefined : { cause });
  }

  private journalError(code: DaymindErrorCode, message: string, cause?: unknown): StoreError {
    return new StoreError(code, this.journalPath, message, cause === undefined ? undefined : { cause });
  }
}
