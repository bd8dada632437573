import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { FileLock } from './lock';
import { removeTempFiles, tempPathFor } from './temp-files';

/**
 * An open file descriptor. Plain numbers, not FileHandles: a store dropped without close() then
 * leaks a descriptor instead of having Node close a FileHandle on garbage collection (deprecated,
 * and announced to become an error).
 */
export type OpenFile = number;

/** The content of a file together with the identity of the exact version that was read. */
export interface FileVersion {
  bytes: Buffer;
  /** inode, size and mtime (ns): changes whenever the file is replaced or rewritten. */
  signature: string;
  /** The version read, still open (see {@link KnownVersion}). */
  handle: OpenFile;
}

const openFd = promisify(fs.open);
const writeFd = promisify(fs.write);
const fsyncFd = promisify(fs.fsync);
const fstatFd = promisify(fs.fstat) as (fd: number, options: { bigint: true }) => Promise<fs.BigIntStats>;

/** Closes a file opened by this module (a version's handle not kept). */
export function closeOpenFile(file: OpenFile): Promise<void> {
  return new Promise((resolve) => fs.close(file, () => resolve()));
}

/**
 * The version of a file a process knows (last read or written), kept open. While it is open its
 * inode number cannot be given to another file, so a path whose inode, size and mtime equal ours
 * really is that version: file systems stamp mtimes coarsely (a few ms), and a freed inode number
 * is soon reused, so without the open descriptor two versions could look alike.
 */
export class KnownVersion {
  private file: OpenFile | undefined;
  signature = '';

  /** Takes `file` (now owned) as the known version; closes the previous one. */
  set(file: OpenFile, signature: string): void {
    const previous = this.file;
    this.file = file;
    this.signature = signature;
    if (previous !== undefined && previous !== file) void closeOpenFile(previous);
  }

  async close(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    this.signature = '';
    if (file !== undefined) await closeOpenFile(file);
  }
}

function signatureOf(stat: fs.BigIntStats): string {
  return `${stat.ino}:${stat.size}:${stat.mtimeNs}`;
}

const missing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

/**
 * Reads a file and the signature of the very version read (fstat on the open descriptor), or
 * undefined when there is no file at `path`. The file stays open: the caller keeps it in a
 * KnownVersion or closes it. Synchronous: the JSON store loads in its constructor, and its
 * files are small enough to read in one step (see docs/scaling.md).
 */
export function readVersion(path: string): FileVersion | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    if (missing(err)) return undefined;
    throw err;
  }
  try {
    const stat = fs.fstatSync(fd, { bigint: true });
    const bytes = fs.readFileSync(fd); // a directory's descriptor throws EISDIR here
    return { bytes, signature: signatureOf(stat), handle: fd };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** The signature of the file at `path` (see FileVersion), or '' when there is none. */
export async function signatureIfAny(path: string): Promise<string> {
  try {
    return signatureOf(await fsp.stat(path, { bigint: true }));
  } catch (err) {
    if (missing(err)) return '';
    throw err;
  }
}

/** Removes `path` if it is there, durably (the directory is synced); under `lock`, only while it is held. */
export async function removeDurably(path: string, lock?: FileLock): Promise<void> {
  try {
    lock?.assertHeld();
    await fsp.unlink(path);
  } catch (err) {
    if (missing(err)) return;
    throw err;
  }
  await fsyncDirectory(dirname(path));
}

async function fsyncDirectory(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    await handle?.close();
  }
}

/**
 * Replaces `path` with `text` atomically: a temp file in the same directory, fsync, rename, fsync
 * of the directory. Readers see the old or the new content, never a mix. Keeps the file's mode
 * (0600 for a new file: key stores hold secrets). Returns the signature of the new file.
 *
 * Temporary files that dead writers left in the directory are removed first (see
 * removeTempFiles). With `lock`, the lock that guards `path`: every temporary file of `path` is
 * removed too, and the file is only replaced while the lock is held (LockLost otherwise, with
 * nothing replaced).
 */
export async function writeAtomic(path: string, text: string | readonly (string | Buffer)[], lock?: FileLock): Promise<string> {
  const { signature, handle } = await writeAtomicKeepingOpen(path, text, lock);
  await closeOpenFile(handle);
  return signature;
}

/** writeAtomic, returning the new version still open (for a KnownVersion). */
export async function writeAtomicKeepingOpen(
  path: string,
  text: string | readonly (string | Buffer)[],
  lock?: FileLock,
): Promise<{ signature: string; handle: OpenFile }> {
  await removeTempFiles(path, lock);
  lock?.assertHeld();
  let mode = 0o600;
  try {
    mode = (await fsp.stat(path)).mode & 0o777;
  } catch {
    // New file: keep 0600.
  }
  const data =
    typeof text === 'string' ? Buffer.from(text) : Buffer.concat(text.map((part) => (typeof part === 'string' ? Buffer.from(part) : part)));
  const temp = tempPathFor(path);
  const fd = await openFd(temp, 'wx', mode);
  let signature: string;
  try {
    // A write may take fewer bytes than asked: the rest follows.
    for (let at = 0; at < data.length;) {
      const { bytesWritten: written } = await writeFd(fd, data, at, data.length - at, null);
      if (written <= 0) throw new Error('the file system took no bytes of a write');
      at += written;
    }
    await fsyncFd(fd);
    signature = signatureOf(await fstatFd(fd, { bigint: true }));
    // Checked and renamed back to back, with no turn of the event loop in between: a writer that
    // lost the lock (held up past its lease) never replaces the file another holder now writes.
    lock?.assertHeld();
    fs.renameSync(temp, path);
  } catch (err) {
    await closeOpenFile(fd);
    await fsp.unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDirectory(dirname(path));
  return { signature, handle: fd };
}

/**
 * Creates `path` holding `text` unless it exists, atomically (temp file + link, which fails when
 * the target exists), so two processes starting at once never see a half-written file.
 */
export function createIfMissingSync(path: string, text: string): void {
  while (!fs.existsSync(path)) {
    const temp = tempPathFor(path);
    fs.writeFileSync(temp, text, { mode: 0o600, flag: 'wx' });
    try {
      fs.linkSync(temp, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: a writer holding the lock on `path` (it exists, then) removed our temporary file
      // as one of its own (see removeTempFiles); the loop sees the file.
      if (code !== 'EEXIST' && code !== 'ENOENT') throw err;
    } finally {
      fs.rmSync(temp, { force: true });
    }
  }
}
