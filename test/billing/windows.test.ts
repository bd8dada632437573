import { foldParts, reportsOf, windowOf, windowSeconds, type UsagePart } from '../../src/billing/windows';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const W = 1_800_000_000;

const part = (id: string, at: number, keys: UsagePart['keys'], by = 'p1', window = W): UsagePart => ({
  id,
  by,
  window,
  at: window + at,
  keys,
});

describe('billing windows', () => {
  test('lengths that divide a day, written s, m, h or d; anything else is refused with a reason', () => {
    expect(['30s', '1m', '5m', '15m', '1h', '6h', '1d'].map(windowSeconds)).toEqual([30, 60, 300, 900, 3600, 21_600, 86_400]);
    expect(windowSeconds('7m')).toMatch(/^must divide a day evenly/);
    expect(windowSeconds('2d')).toMatch(/^must divide a day evenly/);
    expect(windowSeconds('0s')).toMatch(/^must divide a day evenly/);
    expect(windowSeconds('5 minutes')).toMatch(/^must be a duration such as "1m"/);
    expect(windowSeconds(60)).toMatch(/^must be a duration/);
    expect(windowOf(W + 59.9, 60)).toBe(W);
    expect(windowOf(W + 60, 60)).toBe(W + 60);
  });

  test('a key whose customer changed within a window has one report per customer; owner and prefix are the latest', () => {
    const reports = reportsOf([
      part('b1', 1, { [A]: [2, 'dm_old', 'acme', 'cus_1'], [B]: [1, 'dm_b', 'beta', null] }),
      part('b2', 5, { [A]: [3, 'dm_new', 'acme-renamed', 'cus_2'] }),
      part('b3', 9, { [A]: [4, 'dm_new', 'acme-renamed', 'cus_1'] }),
    ]);
    expect(reports.map((r) => [r.key_hash === A ? 'A' : 'B', r.customer_id, r.quantity, r.key_prefix, r.owner, r.window_end - W])).toEqual([
      ['A', 'cus_1', 6, 'dm_new', 'acme-renamed', 9],
      ['A', 'cus_2', 3, 'dm_new', 'acme-renamed', 5],
      ['B', null, 1, 'dm_b', 'beta', 1],
    ]);
    expect(new Set(reports.map((r) => r.identifier)).size).toBe(3);
  });

  test('folding parts keeps every unit with its customer, per process and window', () => {
    const parts = [
      part('b1', 1, { [A]: [2, 'dm_a', 'acme', 'cus_1'] }),
      part('b2', 2, { [A]: [3, 'dm_a', 'acme', 'cus_1'], [B]: [1, 'dm_b', 'beta', null] }),
      part('b3', 3, { [A]: [1, 'dm_a', 'acme', 'cus_2'] }), // another customer: kept apart
      part('b4', 4, { [B]: [5, 'dm_b', 'beta', null] }, 'p2'), // another process
      part('b5', 1, { [B]: [7, 'dm_b', 'beta', null] }, 'p1', W + 60), // another window
    ];
    const folded = foldParts(parts);
    expect(folded).toHaveLength(4);
    const sum = (ps: UsagePart[]) => reportsOf(ps).map((r) => [r.window_start, r.key_hash, r.customer_id, r.quantity, r.window_end]);
    expect(sum(folded)).toEqual(sum(parts));
    expect(folded.map((p) => p.id)).toEqual([expect.stringMatching(/^f_[0-9a-f]{32}$/), 'b4', 'b5', 'b3']);
    expect(foldParts([parts[1]!, parts[0]!])[0]!.id).toBe(foldParts([parts[0]!, parts[1]!])[0]!.id); // made of the ids, in any order
  });
});
