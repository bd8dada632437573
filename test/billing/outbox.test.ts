import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appendLines, readJsonl } from '../../src/billing/jsonl';
import { Outbox } from '../../src/billing/outbox';
import { BillingDispatcher } from '../../src/billing/dispatcher';
import { tempDir } from '../helpers';

const report = (identifier: string, quantity = 1) => ({
  identifier,
  key_hash: 'a'.repeat(64),
  key_prefix: 'dm_abcdef',
  owner: 'alpha',
  customer_id: null,
  quantity,
  window_start: 1,
  window_end: 2,
});

describe('billing outbox', () => {
  test('a line cut short by a crash is skipped, and the next append still lands on a line of its own', async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl');
    const outbox = new Outbox(path);
    await outbox.add([report('dmu_1')]);
    writeFileSync(path, readFileSync(path, 'utf8') + '{"report":{"identifier":"dmu_cut"'); // crash mid-append
    await outbox.add([report('dmu_2', 5)]);
    const { pending } = await outbox.read();
    expect(pending.map((r) => [r.identifier, r.quantity])).toEqual([
      ['dmu_1', 1],
      ['dmu_2', 5],
    ]);
  });

  test('settled reports drop out; compaction keeps exactly the pending ones', async () => {
    const path = join(tempDir(), 'billing-outbox.jsonl');
    const outbox = new Outbox(path);
    await outbox.add([report('dmu_1'), report('dmu_2'), report('dmu_3'), report('dmu_1')]);
    await outbox.settle(['dmu_1'], 'ack');
    await outbox.settle(['dmu_3'], 'dead');
    expect((await outbox.read()).pending.map((r) => r.identifier)).toEqual(['dmu_2']);
    await outbox.compact();
    expect(await readJsonl(path)).toEqual([{ report: report('dmu_2') }]);
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
      { intervalMs: 60_000, deadLetterPath: join(dir, 'dead.jsonl'), onError: (e) => errors.push(e), deliverTimeoutMs: 50 },
    );
    await dispatcher.enqueue([report('dmu_1')]);
    await dispatcher.deliver();
    expect(errors[0]!.message).toMatch(/deliver\(\) of "stuck" did not answer within 50 ms/);
    expect((await outbox.read()).pending).toHaveLength(1);
    hang = false;
    await new Promise((r) => setTimeout(r, 600)); // past the first backoff
    await dispatcher.deliver();
    expect(delivered).toEqual(['dmu_1']);
    expect((await outbox.read()).pending).toHaveLength(0);
  });
});
