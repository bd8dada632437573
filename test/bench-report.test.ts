// The benchmark's arithmetic (bench/report.js): ratios against the bare runs beside each scenario.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { bracketed, summarize } = require('../bench/report') as {
  bracketed(runs: Array<{ name: string; result: Record<string, unknown> }>): Record<string, Record<string, unknown>>;
  summarize(raw: unknown): {
    scenarios: Record<string, { ratio_to_bare: number; cpu_ratio_to_bare: number }>;
    ratios: Record<string, number>;
  };
};

const run = (name: string, rps: number, cpu = 1_000_000 / rps) => ({
  name,
  result: { rps, cpuMicrosPerRequest: cpu, p99Ms: 10_000 / rps, p50Ms: 1, non2xx: 0, errors: 0, timeouts: 0 },
});

describe('bench report', () => {
  test('each scenario is divided by the mean of the bare runs just before and after it', () => {
    // The machine slows down during the round: bare 1000 at the start, 500 at the end.
    const round = bracketed([run('bare', 1000), run('a', 900), run('b', 800), run('bare', 800), run('c', 300), run('bare', 500)]);
    expect((round.a!.bare as { rps: number }).rps).toBe(900);
    expect((round.b!.bare as { rps: number }).rps).toBe(900);
    expect((round.c!.bare as { rps: number }).rps).toBe(650);
    expect(round.bare!.rps).toBe(800); // the median of its runs
    expect(round.bare!.runs).toHaveLength(3);

    const results = summarize({ meta: {}, scenarios: ['bare', 'a', 'b', 'c'], rounds: [round], micro: {}, scale: {}, notes: [] });
    expect(results.scenarios.a!.ratio_to_bare).toBe(1);
    expect(results.scenarios.c!.ratio_to_bare).toBeCloseTo(300 / 650, 3);
    // CPU: bare's CPU per request beside it (the mean of 1250 and 2000 µs) over the scenario's.
    expect(results.scenarios.c!.cpu_ratio_to_bare).toBeCloseTo((1_250 + 2_000) / 2 / (1_000_000 / 300), 2); // 0.4875, rounded to 3 places
  });

  test('a ratio between two scenarios divides their figures relative to bare, so a slowdown between them cancels out', () => {
    const rounds = [
      bracketed([run('bare', 1000), run('keys10', 900), run('bare', 1000), run('keys100k', 450), run('bare', 500)]),
      bracketed([run('bare', 600), run('keys100k', 540), run('bare', 600), run('keys10', 600), run('bare', 600)]),
    ];
    const results = summarize({ meta: {}, scenarios: ['bare', 'keys10', 'keys100k'], rounds, micro: {}, scale: {}, notes: [] });
    // Round 1: keys10 at 0.9 of bare, keys100k at 0.6 (450 / 750); round 2: 1.0 and 0.9.
    expect(results.ratios.keys100k_vs_keys10).toBeCloseTo((0.6 / 0.9 + 0.9 / 1.0) / 2, 3);
  });

  test('default against the hand-rolled minimum is reported when that scenario ran (full runs), and only then', () => {
    const round = bracketed([run('bare', 1000), run('default', 880), run('handrolled', 920), run('bare', 1000)]);
    const full = summarize({ meta: {}, scenarios: ['bare', 'default', 'handrolled'], rounds: [round], micro: {}, scale: {}, notes: [] });
    expect(full.ratios.default_vs_handrolled).toBeCloseTo(880 / 920, 3);
    expect(full.ratios.handrolled_vs_bare).toBeCloseTo(0.92, 3);
    const quick = summarize({ meta: {}, scenarios: ['bare', 'default'], rounds: [round], micro: {}, scale: {}, notes: [] });
    expect(quick.ratios).not.toHaveProperty('default_vs_handrolled');
  });
});
