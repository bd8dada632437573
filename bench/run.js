'use strict';
// The benchmark: `node bench/run.js [--quick]` (after `npm run build`; `npm run bench` does both).
// Interleaves the HTTP scenarios over rounds, then runs the verify micro-benchmark and the
// 10,000-key store figures, and reports (bench/report.js). Missed targets never fail the run.
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { buildBaseline, snapshotLibrary } = require('./library');
const { startRedis } = require('./redis');
const { NODE_OPTIONS, canPin, nodeChild, nextMessage, ask, payload, stop, killAll } = require('./proc');

const ROOT = path.resolve(__dirname, '..');
const QUICK = process.argv.includes('--quick');
/** `--baseline <git ref>`: also measure the default product as built from that commit (`default_before`). */
const BASELINE_REF = process.argv.includes('--baseline') ? process.argv[process.argv.indexOf('--baseline') + 1] : undefined;
const PLAN = QUICK
  ? {
      rounds: 2,
      durationS: 1.5,
      warmupS: 0.3,
      bareEvery: 4,
      connections: 50,
      microS: 1,
      microWarmupS: 0.3,
      stallLeadMs: 500,
      stallBaselineMs: 500,
      stallTimeoutMs: 5_000,
    }
  : {
      rounds: 5,
      durationS: 5,
      warmupS: 1,
      bareEvery: 2,
      connections: 50,
      microS: 2,
      microWarmupS: 1,
      stallLeadMs: 1000,
      stallBaselineMs: 1000,
      stallTimeoutMs: 30_000,
    };
const STORE_KEYS = 10_000;
const FLUSH_KEYS = 1_000;

let tmp;
let snapshot;
let baseline;
const t0 = Date.now();
const progress = (msg) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);

function cleanup() {
  killAll();
  for (const dir of [tmp, snapshot, baseline?.dir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  tmp = snapshot = baseline = undefined;
}

process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    progress(`${signal}: stopping all child processes`);
    cleanup();
    process.exit(130);
  });
}

function meta() {
  const git = (args) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() || null;
  return {
    date: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      memoryGB: Math.round(os.totalmem() / 2 ** 30),
    },
    library: {
      version: require('../package.json').version,
      commit: git(['rev-parse', '--short', 'HEAD']),
      srcModified: Boolean(git(['status', '--porcelain', 'src'])),
      builtAt: fs.statSync(path.join(ROOT, 'dist', 'cjs', 'index.js')).mtime.toISOString(),
    },
    pinned: canPin(),
    childNodeOptions: NODE_OPTIONS(),
    plan: PLAN,
  };
}

/** One request before the load: 200 and the expected body, else the scenario is broken. */
function check(url, headers) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () =>
          res.statusCode === 200 && body === '{"hello":"world"}'
            ? resolve()
            : reject(new Error(`GET /hello gave ${res.statusCode} ${body}`)),
        );
      })
      .on('error', reject);
  });
}

/** Runs one scenario once: fresh server (and store copy), check, warm-up and measured load. */
async function runScenario(load, name, config, runDir) {
  const server = nodeChild(0, 'server.js', [name, JSON.stringify(config)]);
  try {
    const ready = await nextMessage(server, 'ready');
    const url = `http://127.0.0.1:${ready.port}/hello`;
    const headers = { authorization: `Bearer ${ready.key}` };
    await check(url, headers);
    const run = { type: 'run', url, headers, connections: PLAN.connections };
    await ask(load, { ...run, duration: PLAN.warmupS, warmup: 0 }, 'result', PLAN.warmupS * 1000 + 60_000);
    // The server's CPU time per request of the measured run: far steadier than throughput on a shared machine.
    const before = (await ask(server, { type: 'cpu' }, 'cpu', 10_000)).micros;
    const result = payload(await ask(load, { ...run, duration: PLAN.durationS, warmup: 0 }, 'result', PLAN.durationS * 1000 + 60_000));
    const after = (await ask(server, { type: 'cpu' }, 'cpu', 10_000)).micros;
    return { ...result, cpuMicrosPerRequest: result.requests > 0 ? (after - before) / result.requests : null };
  } finally {
    await stop(server);
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}

async function micro(kind, extra = []) {
  const child = nodeChild(0, 'micro.js', [kind, String(PLAN.microS), String(PLAN.microWarmupS), ...extra]);
  try {
    return (await nextMessage(child, 'result', 60_000)).opsPerSec;
  } finally {
    await stop(child);
  }
}

const dec = (x, digits = 1) => (x == null ? x : Number(x.toFixed(digits)));

/** Runs `fn`, returning its value, or undefined with a note when it fails. */
async function attempt(what, notes, fn) {
  try {
    return await fn();
  } catch (err) {
    notes.push(`${what} failed: ${err.message}`);
    progress(`${what} FAILED: ${err.message}`);
    return undefined;
  }
}

async function main() {
  snapshot = snapshotLibrary();
  const { writeStore, writeStoreAsWritten, copyStore } = require('./fixtures');
  const { storeLoad, flushStall } = require('./scale');
  const { billingScenario } = require('./billing');
  const report = require('./report');
  const notes = [];
  const info = meta();
  if (!info.pinned) notes.push('taskset unavailable (or fewer than 2 cores): processes were not pinned, figures are noisier');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'daymind-bench-'));

  progress(`${info.mode} run: writing store files (${STORE_KEYS.toLocaleString('en-US')} keys) in ${tmp}`);
  const fixtures = path.join(tmp, 'fixtures');
  const store = (name, count, keep) => ({
    file: path.join(fixtures, `${name}.json`),
    keys: writeStore(path.join(fixtures, `${name}.json`), count, keep),
  });
  const defaultStore = store('default', 1);
  const keys10Store = store('keys10', 10);
  // The throughput scenarios and the load figures use the 10k store as a running deployment has
  // it (one record a line, after its first write); the flush stall uses the indented file of an
  // existing deployment.
  const indentedBigStore = store('keys10k-indented', STORE_KEYS, FLUSH_KEYS + 1);
  const bigStore = { file: path.join(fixtures, 'keys10k.json'), keys: indentedBigStore.keys };
  writeStoreAsWritten(indentedBigStore.file, bigStore.file);
  const flushKeysFile = path.join(fixtures, 'flush-keys.json');
  fs.writeFileSync(flushKeysFile, JSON.stringify(bigStore.keys.slice(1)));

  let redis;
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0)
    notes.push('redis scenario skipped: redis-server is not on PATH');
  else redis = await attempt('starting redis-server (redis scenario skipped)', notes, () => startRedis(tmp));
  const { createBenchDatabase, pgFlushStall } = require('./postgres');
  const pg = await attempt('creating a PostgreSQL database on 127.0.0.1:5432 (postgres scenarios skipped)', notes, () =>
    createBenchDatabase(),
  );
  // handrolled (the least a hand-rolled equivalent does) only in full runs: it keeps --quick under a minute.
  if (BASELINE_REF) {
    progress(`building the baseline ${BASELINE_REF}`);
    baseline = buildBaseline(BASELINE_REF, path.join(ROOT, 'node_modules', '.cache'));
    info.baseline = baseline.commit;
  }
  const scenarios = [
    'bare',
    'noop',
    'default',
    ...(baseline ? ['default_before'] : []),
    'keys10',
    'keys10k',
    ...(redis ? ['redis'] : []),
    ...(pg ? ['postgres'] : []),
    'erl',
    'erl_apikey',
  ];
  if (!QUICK) scenarios.push('handrolled');
  let runs = 0;
  const configFor = (name) => {
    const runDir = path.join(tmp, `run-${++runs}`);
    const fromStore = (s) => ({ storePath: copyStore(s.file, runDir), key: s.keys[0] });
    const config = {
      default: () => fromStore(defaultStore),
      default_before: () => ({ ...fromStore(defaultStore), lib: baseline.lib }),
      keys10: () => fromStore(keys10Store),
      keys10k: () => fromStore(bigStore),
      redis: () => ({ redisUrl: redis.url }),
      // A schema of its own each run: every run starts from an empty store, as the others do.
      postgres: () => ({ databaseUrl: pg.url, schema: `run${runs}` }),
    }[name]?.() ?? { key: defaultStore.keys[0] };
    return { config, runDir };
  };

  const load = nodeChild(1, 'load.js');
  await nextMessage(load, 'ready', 30_000);

  const rounds = [];
  const others = scenarios.filter((name) => name !== 'bare');
  for (let r = 0; r < PLAN.rounds; r++) {
    // Each round starts one scenario later (A B C, B C A, ...), so that no scenario always runs
    // right after the same one or first of its round; bare Express runs first, after every
    // PLAN.bareEvery scenarios and last, so that each scenario has a bare run on either side.
    const rotated = others.map((_, i) => others[(i + r) % others.length]);
    const order = ['bare'];
    rotated.forEach((name, i) => {
      order.push(name);
      if ((i + 1) % PLAN.bareEvery === 0 || i === rotated.length - 1) order.push('bare');
    });
    const runs = [];
    for (const name of order) {
      const { config, runDir } = configFor(name);
      const result = await runScenario(load, name, config, runDir).catch((err) => {
        progress(`round ${r + 1} ${name} FAILED: ${err.message}`);
        return { error: err.message };
      });
      runs.push({ name, result });
      if (result.rps) progress(`round ${r + 1}/${PLAN.rounds} ${name}: ${Math.round(result.rps)} req/s, p99 ${result.p99Ms} ms`);
    }
    rounds.push(report.bracketed(runs));
  }

  progress('verify() micro-benchmark');
  const microResults = {
    verify_memory_ops_per_sec: dec(await attempt('verify micro-benchmark (memory)', notes, () => micro('memory')), 0),
    // The JSON-store variant only in full runs (it keeps --quick under a minute).
    verify_json_ops_per_sec: QUICK
      ? null
      : dec(
          await attempt('verify micro-benchmark (json)', notes, () =>
            micro('json', [copyStore(defaultStore.file, path.join(tmp, 'micro-json')), defaultStore.keys[0]]),
          ),
          0,
        ),
  };

  progress('10k store: load time and RSS');
  const loaded = (await attempt('10k store load', notes, () => storeLoad(bigStore.file))) ?? {};
  progress(`10k store: event-loop stall of a flush${QUICK ? '' : ' and of a re-read'} under load`);
  const stall =
    (await attempt('10k flush stall', notes, () =>
      flushStall({
        load,
        storePath: copyStore(indentedBigStore.file, path.join(tmp, 'flush')),
        keysFile: flushKeysFile,
        key: bigStore.keys[0],
        connections: PLAN.connections,
        baselineMs: PLAN.stallBaselineMs,
        leadMs: PLAN.stallLeadMs,
        timeoutMs: PLAN.stallTimeoutMs,
        reread: !QUICK, // about 5 s more: full runs only, so that a quick run stays under a minute
      }),
    )) ?? {};
  if (loaded.keys !== undefined && loaded.keys !== STORE_KEYS) notes.push(`the 10k store loaded ${loaded.keys} keys`);
  if (stall.flushFinished === false) {
    notes.push(
      `the flush of the 10k store was not written within ${PLAN.stallTimeoutMs / 1000} s under load; its stall figure covers those ${PLAN.stallTimeoutMs / 1000} s`,
    );
  }
  if (stall.reloadSeen === false)
    notes.push(
      `the server did not show the other process's write within ${PLAN.stallTimeoutMs / 1000} s; its re-read stall figure covers those ${PLAN.stallTimeoutMs / 1000} s`,
    );
  if (stall.load && (stall.load.non2xx || stall.load.errors))
    notes.push(`flush stall run: ${stall.load.non2xx} non-2xx, ${stall.load.errors} errors`);

  let pgFlush = {};
  if (pg) {
    progress('PostgreSQL store: flush of 10,000 keys under load');
    pgFlush =
      (await attempt('PostgreSQL flush', notes, () =>
        pgFlushStall({
          load,
          url: pg.url,
          schema: 'flush',
          keysFile: flushKeysFile,
          connections: PLAN.connections,
          baselineMs: PLAN.stallBaselineMs,
          leadMs: PLAN.stallLeadMs,
          timeoutMs: PLAN.stallTimeoutMs,
        }),
      )) ?? {};
    if (pgFlush.flushFinished === false)
      notes.push(`the PostgreSQL flush was not written within ${PLAN.stallTimeoutMs / 1000} s under load`);
    if (pgFlush.load && (pgFlush.load.non2xx || pgFlush.load.errors))
      notes.push(`PostgreSQL flush run: ${pgFlush.load.non2xx} non-2xx, ${pgFlush.load.errors} errors`);
  }

  // Billing at scale: the app on core 0, the Stripe-like server on core 1 (the load generator idles).
  // A quick run bills 1,000 keys over a 20 s window; a full run 1,000 and 10,000 keys over the
  // default 1-minute window (about 1 and 2 minutes).
  const billing = {};
  for (const keys of QUICK ? [1000] : [1000, 10_000]) {
    progress(`billing: ${keys.toLocaleString('en-US')} active keys, one request a second each, Stripe answering in 100 ms`);
    const figures = await attempt(`billing scenario (${keys} keys)`, notes, () =>
      billingScenario({ keys, dir: tmp, windowSeconds: QUICK ? 20 : 60 }),
    );
    if (figures) {
      billing[`keys_${keys}`] = figures;
      progress(
        `billing ${keys}: ${figures.units_billed} of ${figures.units_allowed} units billed, lag ${dec(figures.lag_seconds)} s, ` +
          `outbox max ${dec(figures.outbox_max_bytes / 2 ** 20, 2)} MB, ${dec(figures.meter_calls_per_second_mean)} calls/s`,
      );
      if (figures.errors.length) notes.push(`billing ${keys}: onError said: ${figures.errors.slice(0, 3).join(' | ')}`);
    }
  }

  await stop(load);
  if (redis) await stop(redis.child);
  if (pg) await attempt('dropping the PostgreSQL database', notes, () => pg.drop());

  const results = report.summarize({
    meta: info,
    scenarios,
    rounds,
    micro: microResults,
    billing,
    scale: {
      store_keys: loaded.keys,
      store_load_ms: dec(loaded.loadMs),
      store_load_rss_growth_mb: dec(loaded.rssGrowthMB),
      store_load_peak_rss_growth_mb: dec(loaded.peakRssGrowthMB),
      store_load_heap_growth_mb: dec(loaded.heapGrowthMB),
      flush_counted_keys: stall.countedKeys,
      flush_batch_keys: stall.flushBatchKeys,
      flush_max_stall_ms: dec(stall.flushMaxStallMs),
      flush_baseline_max_stall_ms: dec(stall.baselineMaxStallMs),
      flush_ms: dec(stall.flushMs),
      flush_finished: stall.flushFinished,
      reload_max_stall_ms: dec(stall.reloadMaxStallMs),
      reload_ms: dec(stall.reloadMs),
      reload_seen: stall.reloadSeen,
      reload_other_write_ms: dec(stall.otherWriteMs),
      flush_load: stall.load,
      pg_flush_counted_keys: pgFlush.countedKeys,
      pg_flush_batch_keys: pgFlush.flushBatchKeys,
      pg_flush_max_stall_ms: dec(pgFlush.flushMaxStallMs),
      pg_flush_baseline_max_stall_ms: dec(pgFlush.baselineMaxStallMs),
      pg_flush_ms: dec(pgFlush.flushMs),
      pg_flush_finished: pgFlush.flushFinished,
      pg_flush_load: pgFlush.load,
    },
    notes,
  });
  report.printText(results);
  report.writeJson(results, path.join(__dirname, 'results', 'latest.json'));
  report.writeDocs(results, path.join(ROOT, 'docs', 'performance.md'));
  progress('wrote bench/results/latest.json and docs/performance.md');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[bench] failed: ${err.stack ?? err}`);
    process.exit(1);
  },
);
