import * as fsp from 'node:fs/promises';
import type { FileLock } from '../internal/fs/lock';

/**
 * Appends lines to a file and fsyncs it before resolving. The callers hold a lock on the file. An
 * append that fails is taken back whole: a full disk can take part of it before refusing the
 * rest, and the file is cut back to its size before the append, so that it holds no half line.
 * Under `lock` (the file's), only while it is held (LockLost otherwise, with nothing appended).
 */
export async function appendLines(path: string, lines: string[], lock?: FileLock): Promise<void> {
  await appendBytes(
    path,
    lines.map((line) => Buffer.from(line)),
    lock,
  );
}

/**
 * The JSON values of a JSONL file ([] when it does not exist). A last line cut short by a crash
 * is ignored; a damaged line elsewhere is reported through `onBadLine` and skipped.
 */
export async function readJsonl<T>(path: string, onBadLine?: (lineNumber: number) => void): Promise<T[]> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const lines = text.split('\n');
  const values: T[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      values.push(JSON.parse(line) as T);
    } catch {
      if (i < lines.length - 1 || text.endsWith('\n')) onBadLine?.(i + 1);
    }
  });
  return values;
}

/**
 * Appends `chunks`, each as a line of its own, byte for byte (damaged lines moved to a quarantine
 * file keep every byte), and fsyncs, as appendLines does: a failed append is taken back whole, and
 * with `lock` nothing is appended unless it is still held.
 */
export async function appendBytes(path: string, chunks: Buffer[], lock?: FileLock): Promise<void> {
  if (chunks.length === 0) return;
  const handle = await fsp.open(path, 'a+', 0o600);
  try {
    const { size } = await handle.stat();
    // A crash can leave a last line cut short; start on a line of our own rather than finish it.
    const last = Buffer.alloc(1);
    if (size > 0) await handle.read(last, 0, 1, size - 1);
    const newline = Buffer.from('\n');
    const lead = size > 0 && last[0] !== 0x0a ? [newline] : [];
    // Outside the try below: a holder that lost the lock neither appends to a file the next holder
    // may be compacting nor cuts it back to the size it saw.
    lock?.assertHeld();
    try {
      await handle.appendFile(Buffer.concat([...lead, ...chunks.flatMap((chunk) => [chunk, newline])]));
      await handle.sync();
    } catch (err) {
      await handle.truncate(size).catch(() => undefined);
      throw err;
    }
  } finally {
    await handle.close();
  }
}
