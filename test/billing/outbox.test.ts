import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appendLines, readJsonl } from '../../src/billing/jsonl';
import { Outbox } from '../../src/billing/outbox';
import { BillingDispatcher } from '../../src/billing/dispatcher';
import type { UsagePart } from '../../src/billing/windows';
import { tempDir } from '../helpers';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const W = 1_800_000_000; // a window start (Unix seconds, a multiple of 60)

/** A part of flush batch `id` at `at` (seconds into window W) with `units` per key. */
const part = (id: string, at: number, units: Record<string, number>, by = 'p1', customer: string | null = 'cus_A1'): UsagePart => ({
  id,
  by,
  window: W,
  at: W + at,
  keys: Object.fromEntries(Object.entries(units).map(([hash, n]) => [hash, [n, 'dm_abcdef', 'alpha', customer]])),
});

const all = () => true;

describe('billing outbox', () => {
  test('parts of one window close into one report per key, with the sum of their units; closing again changes nothing', async () => {
    const outbox = new Outbox(join(tempDir(), 'billing-outbox.jsonl'));
    await outbox.addParts([part('b1', 1, { [A]: 2, [B]: 1 })]);
    await outbox.addParts([part('b2', 2, { [A]: 3 }), part('b3', 3, { [B]: 4 })]);
    const reports = await outbox.close(all);
    expect(reports.map((r) => [r.key_hash, r.quantity, r.window_start, r.window_end])).toEqual([
      [A, 5, W, W + 2],
      [B, 5, W, W + 3],
    ]);
    expect(await outbox.close(all)).toEqual([]);
    const { pending, parts } = await outbox.read();
    expect(pending).toEqual(reports);
    expect(parts).toEqual([]);
  });

  test('identifiers come from the parts: the same parts close into the same identifiers, other parts into others', async () => {
    const close = async (parts: UsagePart[]) => {
      const outbox = new Outbox(join(tempDir(), 'billing-outbox.jsonl'));
      await outbox.addParts(parts);
      return (await outbox.close(all)).map((r) => r.identifier);
    };
    const first = await close([part('b1', 1, { [A]: 2 }), part('b2', 2, { [A]: 3 })]);
    expect(first[0]).toMatch(/^dmu_[0-9a-f]{40}$/);
    expect(await close([part('b2', 2, { [A]: 3 }), part('b1', 1, { [A]: 2 })])).toEqual(first);
    expect(await close([part('b1', 1, { [A]: 2 })])).not.toEqual(first);
  });

  test('another process sees the appended lines, and reads the file anew after a compaction', async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl');
    const writer = new Outbox(path);
    const reader = new Outbox(path);
    await writer.addParts([part('b1', 1, { [A]: 2 })]);
    expect((await reader.read()).parts.map((p) => p.id)).toEqual(['b1']);
    await writer.addParts([part('b2', 2, { [A]: 1 }), part('b3', 3, { [B]: 1 }, 'p2')]);
    expect((await reader.read()).parts.map((p) => p.id)).toEqual(['b1', 'b2', 'b3']);
    await writer.close((p) => p.id === 'b3');
    await writer.compact();
    const { parts, pending } = await reader.read();
    // b1 and b2 (one process, one window) folded into one part with the same units.
    expect(parts).toHaveLength(1);
    expect(parts[0]!.keys[A]![0]).toBe(3);
    expect(pending.map((r) => [r.key_hash, r.quantity])).toEqual([[B, 1]]);
  });

  test('compaction keeps the file proportional to what is pending', async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl');
    const outbox = new Outbox(path);
    const keys = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [i.toString(16).padStart(64, '0'), 1]));
    for (let i = 0; i < 50; i++) await outbox.addParts([part(`b${i}`, i, keys)]);
    const before = statSync(path).size;
    await outbox.refresh();
    expect(outbox.wantsCompaction()).toBe(true);
    await outbox.compact();
    const after = statSync(path).size;
    expect(after).toBeLessThan(before / 40);
    const [report] = await outbox.close(all);
    expect(report!.quantity).toBe(50);
    const delivered = (await outbox.read()).pending.map((r) => r.identifier);
    await outbox.settle(delivered, 'ack');
    await outbox.refresh();
    expect(outbox.wantsCompaction()).toBe(true); // nothing pending
    await outbox.compact();
    expect(readFileSync(path, 'utf8')).toBe('');
  });

  test('reports written by earlier versions ({"report": ...} and {"ack": "id"} lines) are still delivered and settled', async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl');
    const report = (identifier: string) => ({
      identifier,
      key_hash: A,
      key_prefix: 'dm_abcdef',
      owner: 'alpha',
      customer_id: null,
      quantity: 1,
      window_start: 1,
      window_end: 2,
    });
    await appendLines(path, [
      JSON.stringify({ report: report('dmu_1') }),
      JSON.stringify({ report: report('dmu_2') }),
      JSON.stringify({ ack: 'dmu_1' }),
    ]);
    expect((await new Outbox(path).read()).pending.map((r) => r.identifier)).toEqual(['dmu_2']);
  });

  test('a line cut short by a crash counts for nothing: its parts stay pending until closed whole', async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl');
    const outbox = new Outbox(path);
    await outbox.addParts([part('b1', 1, { [A]: 2 })]);
    const closing = JSON.stringify({ reports: [], closes: ['b1'] });
    appendFileSync(path, closing.slice(0, 20)); // the process died in the middle of a closing
    expect((await outbox.read()).parts.map((p) => p.id)).toEqual(['b1']);
    const [report] = await outbox.close(all); // the next append starts a line of its own
    expect(report!.quantity).toBe(2);
    expect((await new Outbox(path).read()).pending).toEqual([report]);
  });

  test('appendLines fsyncs whole lines; readJsonl reports a damaged line in the middle', async () => {
    const path = join(tempDir(), 'x.jsonl');
    await appendLines(path, ['{"a":1}']);
    writeFileSync(path, readFileSync(path, 'utf8') + 'garbage\n');
    await appendLines(path, ['{"a":2}']);
    const bad: number[] = [];
    expect(await readJsonl(path, (n) => bad.push(n))).toEqual([{ a: 1 }, { a: 2 }]);
    expect(bad).toEqual([2]);
  });

  test('a provider that never answers times out and the report is retried, not lost', async () => {
    const dir = tempDir();
    const outbox = new Outbox(join(dir, 'billing-outbox.jsonl'));
    const delivered: string[] = [];
    let hang = true;
    const errors: Error[] = [];
    const dispatcher = new BillingDispatcher(
      outbox,
      {
        name: 'stuck',
        deliver: (r) => (hang ? new Promise<void>(() => undefined) : Promise.resolve(void delivered.push(r.identifier))),
      },
      {
        intervalMs: 60_000,
        deadLetterPath: join(dir, 'dead.jsonl'),
        onError: (e) => errors.push(e),
        deliverTimeoutMs: 50,
        windowSeconds: 60,
        closeAfterMs: 0,
        concurrency: 4,
        callsPerSecond: 100,
        now: () => (W + 120) * 1000,
      },
    );
    await outbox.addParts([part('b1', 1, { [A]: 1 })]);
    await dispatcher.deliver();
    expect(errors[0]!.message).toMatch(/deliver\(\) of "stuck" did not answer within 50 ms/);
    expect((await outbox.read()).pending).toHaveLength(1);
    hang = false;
    await new Promise((r) => setTimeout(r, 600)); // past the first backoff
    await dispatcher.deliver();
    expect(delivered).toHaveLength(1);
    expect(errors.map((e) => e.message)).toHaveLength(1);
    expect((await outbox.read()).pending).toHaveLength(0);
  });
});

describe('damaged outbox lines', () => {
  test('a stray character: the line goes to the quarantine file byte for byte, once, and out of the outbox; the rest is billed', async () => {
    const dir = tempDir();
    const path = join(dir, 'billing-outbox.jsonl');
    const outbox = new Outbox(path);
    await outbox.addParts([part('b1', 1, { [A]: 2 })]);
    const damaged = Buffer.concat([
      Buffer.from(JSON.stringify({ parts: part('b2', 2, { [B]: 7 }) }).replace('"b2"', '"b2"x')),
      Buffer.from([0xff]),
    ]);
    appendFileSync(path, Buffer.concat([damaged, Buffer.from('\n')]));
    await outbox.addParts([part('b3', 3, { [A]: 1 })]);
    await outbox.refresh();
    expect(outbox.state.damaged.map((d) => d.line)).toEqual([2]);
    expect(outbox.wantsCompaction()).toBe(true);
    expect((await outbox.compact()).map((d) => d.line)).toEqual([2]);
    expect(readFileSync(`${path}.quarantine`)).toEqual(Buffer.concat([damaged, Buffer.from('\n')]));
    expect(readFileSync(path, 'utf8')).not.toContain('"b2"x');
    await outbox.refresh();
    expect(outbox.state.damaged).toEqual([]);
    expect(await outbox.compact()).toEqual([]); // not quarantined again
    expect(readFileSync(`${path}.quarantine`)).toEqual(Buffer.concat([damaged, Buffer.from('\n')]));
    const [report] = await outbox.close(all);
    expect(report!.quantity).toBe(3);
  });

  test('a line of the right JSON but the wrong shape (a quantity that is text) is damaged too, not guessed at', async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl');
    const outbox = new Outbox(path);
    const line = JSON.stringify({ parts: part('b1', 1, { [A]: 2 }) }).replace('[2,', '["2",');
    appendFileSync(path, line + '\n');
    await outbox.refresh();
    expect(outbox.state.damaged.map((d) => d.bytes.toString())).toEqual([line]);
    expect(outbox.state.parts.size).toBe(0);
  });
});

test('a file rewritten in place (or compacted onto an inode used before) is read anew, not from where the last read stopped', async () => {
  const path = join(tempDir(), 'billing-outbox.jsonl');
  const outbox = new Outbox(path);
  await outbox.addParts([part('b1', 1, { [A]: 2 })]);
  expect((await outbox.read()).parts.map((p) => p.id)).toEqual(['b1']);
  const other = JSON.stringify({ parts: part('b9', 9, { [B]: 5 }) }) + '\n';
  writeFileSync(path, other + other.replace(/"b9"/, '"b8"')); // the same inode, other content, longer
  expect((await outbox.read()).parts.map((p) => p.id)).toEqual(['b9', 'b8']);
});

test('a last line cut short by a crash is quarantined by a compaction, not dropped by its rewrite', async () => {
  const path = join(tempDir(), 'billing-outbox.jsonl');
  const outbox = new Outbox(path);
  await outbox.addParts([part('b1', 1, { [A]: 2 })]);
  const cut = JSON.stringify({ parts: part('b2', 2, { [B]: 3 }) }).slice(0, 50);
  appendFileSync(path, cut); // the writer died in the middle of its append
  await outbox.refresh();
  expect((await outbox.compact()).map((d) => d.bytes.toString())).toEqual([cut]);
  expect(readFileSync(`${path}.quarantine`, 'utf8')).toBe(cut + '\n');
  expect(readFileSync(path, 'utf8')).not.toContain(cut);
  expect((await outbox.read()).parts.map((p) => p.id)).toEqual(['b1']);
});
