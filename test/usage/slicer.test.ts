import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeAtomic } from '../../src/internal/fs/file-io';
import { WorkSlicer } from '../../src/internal/slicer';

describe('WorkSlicer', () => {
  test('a slice is due once its budget is used, and yield() starts the next one', async () => {
    expect(new WorkSlicer(60_000).due()).toBe(false);
    const slicer = new WorkSlicer(0);
    expect(slicer.due()).toBe(true);
    let ran = false;
    setImmediate(() => (ran = true));
    await slicer.yield();
    expect(ran).toBe(true); // the event loop had its turn
  });

  test("yield() still resolves under an application's fake timers", async () => {
    jest.useFakeTimers();
    try {
      await new WorkSlicer(0).yield();
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('writeAtomic', () => {
  test('writes thousands of parts, text and bytes (more than one writev takes), exactly in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'daymind-write-'));
    try {
      const parts = Array.from({ length: 3_000 }, (_, i) =>
        i % 3 === 0 ? `text ${i} Zoë ✓\n` : i % 3 === 1 ? Buffer.from(`bytes ${i} новый\n`) : Buffer.alloc(0),
      );
      const path = join(dir, 'out.txt');
      await writeAtomic(path, parts);
      expect(readFileSync(path, 'utf8')).toBe(parts.map((p) => p.toString()).join(''));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
