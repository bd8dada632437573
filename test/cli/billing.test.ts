import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { appendLines } from '../../src/billing/jsonl';
import { Outbox } from '../../src/billing/outbox';
import type { UsagePart } from '../../src/billing/windows';
import { tempDir } from '../helpers';
import { cli, cliAt } from './run';

const W = 1_800_000_000;
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const part = (id: string, window: number, keys: UsagePart['keys']): UsagePart => ({ id, by: 'p1', window, at: window + 5, keys });

/** A ledger directory with an open window, two reports waiting, a dead letter and a damaged line. */
async function billingDir(): Promise<string> {
  const dir = tempDir();
  const path = join(dir, 'billing-outbox.jsonl');
  const outbox = new Outbox(path);
  await outbox.addParts([part('b1', W, { [A]: [3, 'dm_aaaaaa', 'acme', 'cus_A1'], [B]: [2, 'dm_bbbbbb', 'beta', null] })]);
  await outbox.close(() => true);
  await outbox.addParts([part('b2', W + 60, { [A]: [4, 'dm_aaaaaa', 'acme', 'cus_A1'] })]);
  appendFileSync(path, '{"parts":#\n');
  const letter = {
    report: {
      identifier: 'dmu_dead',
      key_hash: A,
      key_prefix: 'dm_aaaaaa',
      owner: 'acme',
      customer_id: 'cus_Gone',
      quantity: 7,
      window_start: W - 60,
      window_end: W - 55,
    },
    reason: "Stripe answered 400: No such customer: 'cus_Gone'",
    at: W - 50,
  };
  await appendLines(join(dir, 'billing-dead-letter.jsonl'), [JSON.stringify(letter)]);
  return dir;
}

describe('daymind-keys billing', () => {
  test('shows open windows, reports waiting (oldest first, with its age), dead letters and damaged lines, changing nothing', async () => {
    const dir = await billingDir();
    const before = readFileSync(join(dir, 'billing-outbox.jsonl'));
    const run = await cliAt((W + 125) * 1000, ['billing', '--ledger-dir', dir]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const out = run.stdout;
    expect(out).toContain(`Open windows (not closed into reports yet): 1, 4 unit(s): 2027-01-15T08:01:00Z 1 key(s) 4 unit(s)`);
    expect(out).toContain('Waiting for delivery: 2 report(s), 5 unit(s), oldest usage 2027-01-15T08:00:05Z (120 s ago)');
    expect(out).toMatch(/ {2}dmu_[0-9a-f]{40} 3 unit\(s\) of dm_aaaaaa \(acme\) cus_A1, window 2027-01-15T08:00:00Z/);
    expect(out).toMatch(/ {2}dmu_[0-9a-f]{40} 2 unit\(s\) of dm_bbbbbb \(beta\) no customer/);
    expect(out).toContain(`Dead-lettered: 1 report(s), 7 unit(s) in ${join(dir, 'billing-dead-letter.jsonl')}`);
    expect(out).toContain(
      "dmu_dead 7 unit(s) of dm_aaaaaa (acme) cus_Gone, window 2027-01-15T07:59:00Z at 2027-01-15T07:59:10Z: Stripe answered 400: No such customer: 'cus_Gone'",
    );
    expect(out).toContain('Damaged outbox lines: 4');
    expect(readFileSync(join(dir, 'billing-outbox.jsonl'))).toEqual(before);
  });

  test('--json has every report and dead letter', async () => {
    const dir = await billingDir();
    const run = await cliAt((W + 125) * 1000, ['billing', '--ledger-dir', dir, '--json']);
    const status = JSON.parse(run.stdout);
    expect(status).toMatchObject({
      open_windows: [{ window_start: W + 60, keys: 1, units: 4 }],
      pending: { reports: 2, units: 5, oldest_usage: W + 5 },
      dead_letters: { reports: 1, units: 7 },
      outbox: { damaged_lines: [4] },
    });
    expect(status.pending.list.map((r: { owner: string }) => r.owner).sort()).toEqual(['acme', 'beta']);
  });

  test('a ledger directory that does not exist: exit 1 naming it, nothing created', async () => {
    const missing = join(tempDir(), 'nowhere');
    const run = await cli(['--store', join(tempDir(), 'keys.json'), 'billing', '--ledger-dir', missing]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`daymind-keys: cannot read the ledger directory ${missing}: ENOENT: no such directory\n`);
  });
});
