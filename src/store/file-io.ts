import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as lockfile from 'proper-lockfile';

/** The content of a file together with the identity of the exact version that was read. */
export interface FileSnapshot {
  text: string;
  /** inode, size and mtime (ns): changes whenever the file is replaced or rewritten. */
  signature: string;
}

function signatureOf(stat: fs.BigIntStats): string {
  return `${stat.ino}:${stat.size}:${stat.mtimeNs}`;
}

/** Reads a file and the signature of the very version read (fstat on the open descriptor). */
export async function readWithSignature(path: string): Promise<FileSnapshot> {
  const handle = await fsp.open(path, 'r');
  try {
    const stat = await handle.stat({ bigint: true });
    const text = await handle.readFile('utf8');
    return { text, signature: signatureOf(stat) };
  } finally {
    await handle.close();
  }
}

export function readWithSignatureSync(path: string): FileSnapshot {
  const fd = fs.openSync(path, 'r');
  try {
    const stat = fs.fstatSync(fd, { bigint: true });
    const text = fs.readFileSync(fd, 'utf8');
    return { text, signature: signatureOf(stat) };
  } finally {
    fs.closeSync(fd);
  }
}

export async function statSignature(path: string): Promise<string> {
  return signatureOf(await fsp.stat(path, { bigint: true }));
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
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
 */
export async function writeAtomic(path: string, text: string | readonly string[]): Promise<string> {
  let mode = 0o600;
  try {
    mode = (await fsp.stat(path)).mode & 0o777;
  } catch {
    // New file: keep 0600.
  }
  const temp = tempPathFor(path);
  const handle = await fsp.open(temp, 'wx', mode);
  let signature: string;
  try {
    // Part by part: each is encoded on its own, so a large document never blocks the event loop long.
    for (const part of typeof text === 'string' ? [text] : text) await handle.write(part, null, 'utf8');
    await handle.sync();
    signature = signatureOf(await handle.stat({ bigint: true }));
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fsp.unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await fsp.rename(temp, path);
  } catch (err) {
    await fsp.unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDirectory(dirname(path));
  return signature;
}

/**
 * Creates `path` holding `text` unless it exists, atomically (temp file + link, which fails when
 * the target exists), so two processes starting at once never see a half-written file.
 */
export function createIfMissingSync(path: string, text: string): void {
  if (fs.existsSync(path)) return;
  const temp = tempPathFor(path);
  fs.writeFileSync(temp, text, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.unlinkSync(temp);
  }
}

/**
 * Takes the cross-process lock on `path` (proper-lockfile: a `<path>.lock` directory refreshed
 * while held, taken over when stale after 10 s). Waits up to about 20 s for another holder.
 */
export async function acquireLock(path: string, onCompromised: (err: Error) => void): Promise<() => Promise<void>> {
  return lockfile.lock(path, {
    realpath: false,
    stale: 10_000,
    update: 2_000,
    retries: { retries: 120, factor: 1.3, minTimeout: 5, maxTimeout: 200 },
    onCompromised,
  });
}
