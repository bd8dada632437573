'use strict';
// Turns the raw measurements into medians, ratios and target verdicts; prints the tables and
// writes bench/results/latest.json and docs/performance.md.
const fs = require('node:fs');
const path = require('node:path');

const SCENARIO_NOTES = {
  bare: 'Express alone',
  noop: 'Express + one empty middleware (the floor for any middleware)',
  default: 'daymindAuth, JSON file store (1 key), memory limiters',
  default_before: 'the same, built from the baseline commit (--baseline)',
  keys10: 'the same, 10 keys in the store',
  keys10k: 'the same, 10,000 keys in the store',
  redis: 'daymindAuth, Redis store + Redis limiters',
  postgres: 'daymindAuth, PostgreSQL store (1 key) + memory limiters',
  erl: 'express-rate-limit alone (memory)',
  erl_apikey: 'express-rate-limit + a Map look-up of the Bearer key',
  handrolled: 'hand-rolled minimum: Map look-up of the Bearer key, counters, the two RateLimit fields',
};

const { TARGETS } = require('./targets');

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, digits = 3) => (x == null ? null : Number(x.toFixed(digits)));
const get = (obj, dotted) => dotted.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);

/**
 * A run's figure relative to bare Express at the time it ran (the bare runs either side of it),
 * or to its round's bare when the run has no bracket (bare itself, older result files).
 */
function relative(r, name, field) {
  const run = r[name];
  if (!run || run.error || !(run[field] > 0)) return NaN;
  const bare = run.bare ?? r.bare;
  return bare && bare[field] > 0 ? run[field] / bare[field] : NaN;
}

/** Per-round ratios a/b, each scenario against the bare runs beside it (NaN where either did not run cleanly). */
const ratiosOf = (rounds, a, b, field = 'rps') => rounds.map((r) => relative(r, a, field) / relative(r, b, field));

/** Median over rounds of a per-round ratio a/b. */
function roundRatio(rounds, a, b, field = 'rps') {
  return round(median(ratiosOf(rounds, a, b, field)));
}

/** Lowest and highest per-round ratio a/b: how much the rounds disagree. */
function ratioRange(rounds, a, b) {
  const xs = ratiosOf(rounds, a, b).filter(Number.isFinite);
  return xs.length ? [round(Math.min(...xs)), round(Math.max(...xs))] : null;
}

const MEETS = { '>=': (x, goal) => x >= goal, '>': (x, goal) => x > goal, '<=': (x, goal) => x <= goal };

/** Each target with its figure from `results` and whether it was met. */
function targetsOf(results) {
  return TARGETS.map((t) => {
    const figure = get(results, t.figure);
    const status = figure == null ? 'skipped' : MEETS[t.op](figure, t.goal) ? 'met' : 'missed';
    return { id: t.id, label: t.label, figure_name: t.figure, figure: figure ?? null, op: t.op, goal: t.goal, unit: t.unit, status };
  });
}

/** raw: { meta, scenarios: [names], rounds: [{ name: summary|{error} }], micro, billing, scale, notes } */
function summarize(raw) {
  const { rounds } = raw;
  const scenarios = {};
  for (const name of raw.scenarios) {
    const runs = rounds.map((r) => r[name]).filter(Boolean);
    const clean = runs.filter((s) => !s.error);
    scenarios[name] = {
      description: SCENARIO_NOTES[name],
      median_rps: round(median(clean.map((s) => s.rps)), 0),
      median_p50_ms: median(clean.map((s) => s.p50Ms)),
      median_p99_ms: median(clean.map((s) => s.p99Ms)),
      ratio_to_bare: roundRatio(rounds, name, 'bare'),
      ratio_to_bare_range: ratioRange(rounds, name, 'bare'),
      median_cpu_us_per_request: round(median(clean.map((s) => s.cpuMicrosPerRequest).filter(Number.isFinite)), 1),
      // bare's CPU per request over this one's, per round: the throughput ratio a core-bound server would reach.
      cpu_ratio_to_bare: roundRatio(rounds, 'bare', name, 'cpuMicrosPerRequest'),
      non2xx: clean.reduce((n, s) => n + s.non2xx, 0),
      errors: clean.reduce((n, s) => n + s.errors + s.timeouts, 0),
      failed_rounds: runs.length - clean.length,
      rounds: runs,
    };
  }
  const ratios = {};
  for (const name of raw.scenarios) if (name !== 'bare') ratios[`${name}_vs_bare`] = scenarios[name].ratio_to_bare;
  ratios.keys10k_vs_keys10 = roundRatio(rounds, 'keys10k', 'keys10');
  ratios.keys10k_p99_vs_keys10 = roundRatio(rounds, 'keys10k', 'keys10', 'p99Ms');
  ratios.default_vs_erl = roundRatio(rounds, 'default', 'erl');
  ratios.default_vs_erl_apikey = roundRatio(rounds, 'default', 'erl_apikey');
  if (raw.scenarios.includes('default_before')) {
    ratios.default_vs_before = roundRatio(rounds, 'default', 'default_before');
    ratios.default_vs_before_by_cpu = roundRatio(rounds, 'default_before', 'default', 'cpuMicrosPerRequest');
    ratios.default_before_vs_erl = roundRatio(rounds, 'default_before', 'erl');
    ratios.default_before_vs_erl_apikey = roundRatio(rounds, 'default_before', 'erl_apikey');
  }
  if (raw.scenarios.includes('handrolled')) ratios.default_vs_handrolled = roundRatio(rounds, 'default', 'handrolled');
  for (const name of raw.scenarios) if (name !== 'bare') ratios[`${name}_vs_bare_by_cpu`] = scenarios[name].cpu_ratio_to_bare;
  ratios.default_vs_erl_by_cpu = roundRatio(rounds, 'erl', 'default', 'cpuMicrosPerRequest');

  const billing = {};
  for (const [name, b] of Object.entries(raw.billing ?? {})) {
    billing[name] = {
      ...b,
      billed_fraction: b.units_allowed > 0 ? round(b.units_billed / b.units_allowed, 4) : null,
      lag_fraction_of_window: b.lag_seconds == null ? null : round(b.lag_seconds / b.window_seconds),
      outbox_max_mb: round(b.outbox_max_bytes / 2 ** 20, 2),
    };
  }
  const results = { meta: raw.meta, scenarios, ratios, micro: raw.micro, billing, scale: raw.scale, notes: [...raw.notes] };
  results.targets = targetsOf(results);
  for (const [name, s] of Object.entries(scenarios)) {
    if (s.non2xx || s.errors)
      results.notes.push(`${name}: ${s.non2xx} non-2xx responses and ${s.errors} errors/timeouts (figures suspect)`);
    if (s.failed_rounds) results.notes.push(`${name}: ${s.failed_rounds} round(s) failed: ${s.rounds.find((r) => r.error).error}`);
  }
  return results;
}

const fmtInt = (x) => (x == null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const fmt = (x, d = 2) => (x == null ? 'n/a' : x.toFixed(d));
const fmtFigure = (t) =>
  t.figure == null
    ? 'n/a'
    : t.unit === 'x'
      ? `${fmt(t.figure, 3)}x`
      : t.unit === 'ops/s'
        ? `${fmtInt(t.figure)} ops/s`
        : `${fmt(t.figure, t.unit === 'ms' ? 0 : 1)} ${t.unit}`;
const fmtGoal = (t) => `${t.op} ${t.unit === 'ops/s' ? fmtInt(t.goal) : t.goal}${t.unit === 'x' ? 'x' : ` ${t.unit}`}`;

/** The tables as header + rows, shared by the text and the Markdown rendering. */
function tables(results) {
  const scen = [
    ['scenario', 'req/s (median)', 'x bare', 'rounds range', 'CPU µs/req', 'x bare by CPU', 'p50 ms', 'p99 ms', 'non-2xx/err', 'what'],
  ];
  for (const [name, s] of Object.entries(results.scenarios)) {
    const range = s.ratio_to_bare_range ? `${fmt(s.ratio_to_bare_range[0])}-${fmt(s.ratio_to_bare_range[1])}` : 'n/a';
    scen.push([
      name,
      fmtInt(s.median_rps),
      fmt(s.ratio_to_bare),
      range,
      fmt(s.median_cpu_us_per_request, 0),
      fmt(s.cpu_ratio_to_bare),
      fmt(s.median_p50_ms, 0),
      fmt(s.median_p99_ms, 0),
      `${s.non2xx}/${s.errors}`,
      s.description,
    ]);
  }
  const m = results.micro ?? {};
  const sc = results.scale ?? {};
  const storeSize = `${sc.store_keys == null ? '10,000' : fmtInt(sc.store_keys)}-key store`;
  const figures = [
    ['figure', 'value'],
    ['verify() ops/s, memory store, 1 core', fmtInt(m.verify_memory_ops_per_sec)],
    [
      'verify() ops/s, JSON store, 1 core',
      m.verify_json_ops_per_sec == null && results.meta.mode === 'quick' ? 'full runs only' : fmtInt(m.verify_json_ops_per_sec),
    ],
    [`load ${storeSize}: time`, sc.store_load_ms == null ? 'n/a' : `${fmt(sc.store_load_ms, 0)} ms`],
    [
      `load ${storeSize}: RSS growth (peak)`,
      sc.store_load_rss_growth_mb == null
        ? 'n/a'
        : `${fmt(sc.store_load_rss_growth_mb, 1)} MB (${fmt(sc.store_load_peak_rss_growth_mb, 1)} MB)`,
    ],
    [`flush of the ${storeSize}: keys in the batch`, fmtInt(sc.flush_batch_keys ?? sc.flush_counted_keys)],
    [
      'flush: max event-loop stall (no flush)',
      sc.flush_max_stall_ms == null ? 'n/a' : `${fmt(sc.flush_max_stall_ms, 1)} ms (${fmt(sc.flush_baseline_max_stall_ms, 1)} ms)`,
    ],
    [
      'flush: batch written in (under load)',
      sc.flush_ms == null ? 'n/a' : sc.flush_finished === false ? `> ${fmt(sc.flush_ms, 0)} ms (unfinished)` : `${fmt(sc.flush_ms, 0)} ms`,
    ],
    ['PostgreSQL flush: keys in the batch', fmtInt(sc.pg_flush_batch_keys ?? sc.pg_flush_counted_keys)],
    [
      'PostgreSQL flush: max event-loop stall (no flush)',
      sc.pg_flush_max_stall_ms == null ? 'n/a' : `${fmt(sc.pg_flush_max_stall_ms, 1)} ms (${fmt(sc.pg_flush_baseline_max_stall_ms, 1)} ms)`,
    ],
    [
      'PostgreSQL flush: batch written in (under load)',
      sc.pg_flush_ms == null
        ? 'n/a'
        : sc.pg_flush_finished === false
          ? `> ${fmt(sc.pg_flush_ms, 0)} ms (unfinished)`
          : `${fmt(sc.pg_flush_ms, 0)} ms`,
    ],
    [
      `re-read of the ${storeSize} another process wrote: max stall`,
      sc.reload_max_stall_ms == null
        ? results.meta.mode === 'quick'
          ? 'full runs only'
          : 'n/a'
        : `${fmt(sc.reload_max_stall_ms, 1)} ms${sc.reload_seen === false ? ' (not seen)' : ''}`,
    ],
    [
      'default vs the hand-rolled minimum (throughput)',
      results.ratios.default_vs_handrolled == null && results.meta.mode === 'quick'
        ? 'full runs only'
        : results.ratios.default_vs_handrolled == null
          ? 'n/a'
          : `${fmt(results.ratios.default_vs_handrolled, 3)}x`,
    ],
    ['keys10k vs keys10 (throughput)', results.ratios.keys10k_vs_keys10 == null ? 'n/a' : `${fmt(results.ratios.keys10k_vs_keys10, 3)}x`],
    [
      'p99 keys10k vs keys10',
      `${fmt(results.scenarios.keys10k?.median_p99_ms, 0)} ms vs ${fmt(results.scenarios.keys10?.median_p99_ms, 0)} ms`,
    ],
  ];
  for (const b of Object.values(results.billing ?? {})) {
    const n = b.keys.toLocaleString('en-US');
    figures.push(
      [
        `billing, ${n} keys, ${b.window_seconds} s window: units allowed / billed`,
        `${fmtInt(b.units_allowed)} / ${fmtInt(b.units_billed)}`,
      ],
      [
        `billing, ${n} keys: units billed a second (offered)`,
        `${fmtInt(b.units_billed_per_second)} (${fmtInt(b.units_offered_per_second)})`,
      ],
      [
        `billing, ${n} keys: meter calls a second, mean (highest)`,
        `${fmt(b.meter_calls_per_second_mean, 0)} (${fmtInt(b.meter_calls_per_second_max)}), ${fmtInt(b.meter_calls)} calls, ${fmtInt(b.refused_429)} 429s`,
      ],
      [`billing, ${n} keys: largest outbox`, `${fmt(b.outbox_max_mb, 2)} MB`],
      [`billing, ${n} keys: window end to its last unit acknowledged`, b.lag_seconds == null ? 'n/a' : `${fmt(b.lag_seconds, 1)} s`],
      [`billing, ${n} keys: ledger lines per key and window`, fmt(b.ledger_lines_per_key_and_window, 2)],
      [`billing, ${n} keys: app CPU during the load`, `${fmt(b.app_cpu_percent_during_load, 1)} % of a core`],
    );
  }
  const targets = [['target', 'figure', 'goal', 'result']];
  for (const t of results.targets) targets.push([t.label, fmtFigure(t), fmtGoal(t), t.status.toUpperCase()]);
  return { scen, figures, targets };
}

function renderText(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const left = (i) => i === 0 || (i === rows[0].length - 1 && rows[0].length > 4);
  const line = (r) =>
    r
      .map((c, i) => (left(i) ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function renderMarkdown(rows) {
  const line = (r) => `| ${r.join(' | ')} |`;
  const align = rows[0].map((_, i) => (i === 0 || (i === rows[0].length - 1 && rows[0].length > 4) ? '---' : '---:'));
  return [line(rows[0]), line(align), ...rows.slice(1).map(line)].join('\n');
}

function headline(meta) {
  const p = meta.plan;
  return (
    `${meta.mode} run, ${meta.date}: ${p.rounds} rounds x ${p.durationS} s per scenario (${p.warmupS} s warm-up), ` +
    `${p.connections} connections, pipelining 1; ${meta.machine.cpu}, ${meta.machine.cores} cores, Node.js ${meta.machine.node}; ` +
    (meta.pinned ? 'servers on core 0, load generator on core 1' : 'NOT pinned (taskset unavailable)') +
    (meta.childNodeOptions?.length ? `, node ${meta.childNodeOptions.join(' ')}` : '')
  );
}

function printText(results) {
  const t = tables(results);
  const out = [
    `daymind-auth benchmark: ${headline(results.meta)}`,
    '',
    renderText(t.scen),
    '',
    renderText(t.figures),
    '',
    renderText(t.targets),
  ];
  if (results.notes.length) out.push('', 'Notes:', ...results.notes.map((n) => `- ${n}`));
  console.log(out.join('\n'));
}

function writeJson(results, file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
}

/** docs/performance.md from `results`, its targets judged anew against the list above (the same in a run). */
function writeDocs(results, file) {
  const t = tables({ ...results, targets: targetsOf(results) });
  const notes = results.notes.length ? `\n**Notes from this run**\n\n${results.notes.map((n) => `- ${n}`).join('\n')}\n` : '';
  fs.writeFileSync(file, require('./docs-template')({ headline: headline(results.meta), ...t, render: renderMarkdown, notes }));
}

/**
 * One round's runs (in order) as { scenario: summary }: each scenario's summary carries, as
 * `bare`, the mean of the bare runs just before and after it (the machine's speed at that time);
 * bare's own entry is the median of its runs, with all of them in `runs`.
 */
function bracketed(runs) {
  const round = {};
  const bareAt = runs.flatMap((run, i) => (run.name === 'bare' && run.result.rps ? [i] : []));
  const fields = ['rps', 'cpuMicrosPerRequest', 'p99Ms'];
  runs.forEach((run, i) => {
    if (run.name === 'bare' || run.result.error) {
      if (run.name !== 'bare') round[run.name] = run.result;
      return;
    }
    const before = bareAt.filter((j) => j < i).pop();
    const after = bareAt.find((j) => j > i);
    const sides = [before, after].filter((j) => j !== undefined).map((j) => runs[j].result);
    const bare = {};
    for (const field of fields) bare[field] = sides.reduce((sum, side) => sum + side[field], 0) / sides.length;
    round[run.name] = sides.length ? { ...run.result, bare } : run.result;
  });
  const bareRuns = bareAt.map((j) => runs[j].result);
  if (bareRuns.length) {
    const middle = [...bareRuns].sort((a, b) => a.rps - b.rps)[Math.floor((bareRuns.length - 1) / 2)];
    round.bare = { ...middle, runs: bareRuns };
  } else round.bare = runs.find((run) => run.name === 'bare')?.result;
  return round;
}

module.exports = { bracketed, summarize, targetsOf, tables, printText, writeJson, writeDocs };

// `node bench/report.js --docs`: docs/performance.md again from bench/results/latest.json, without running anything.
if (require.main === module && process.argv.includes('--docs')) {
  const root = path.join(__dirname, '..');
  const results = JSON.parse(fs.readFileSync(path.join(root, 'bench', 'results', 'latest.json'), 'utf8'));
  writeDocs(results, path.join(root, 'docs', 'performance.md'));
  console.log('wrote docs/performance.md from bench/results/latest.json');
}
