'use strict';
// The billing scenario: N active keys, each with its own Stripe customer, one request a second
// each for one whole billing window, billed in Stripe mode to a Stripe-like server (its own
// core) answering in 100 ms. Requests go through auth.verify() in the app's process: this
// machine cannot serve 10,000 HTTP requests a second (Express alone does about 8,000), and the
// scenario measures billing, not HTTP.
//
// The app's clock (the `now` option) is set so that the load starts at a window's start: the
// whole window is measured and no second window is needed. Figures: units offered and billed,
// meter calls a second (mean over the delivery, highest in any one second), the largest outbox
// (sampled every 100 ms), the lag from the window's end to its last unit acknowledged by the
// server, and ledger lines per key and window.
//
// `node bench/billing.js app CONFIG` is the app's child.
const fs = require('node:fs');
const path = require('node:path');
const { nodeChild, nextMessage, ask, payload, stop, exitWithParent } = require('./proc');
const { writeStore, writeStoreAsWritten } = require('./fixtures');

/** A JSON store of `count` keys, key i billed to customer cus_bench<i>, one record a line; returns the plain keys. */
function writeBillingStore(file, count) {
  const keys = writeStore(file, count, count, (i) => ({ stripe_customer_id: `cus_bench${i}` }));
  writeStoreAsWritten(file, file);
  fs.writeFileSync(file + '.keys.json', JSON.stringify(keys));
  return keys;
}

/** In the app child: load, then wait until the outbox is empty; report the figures. */
async function runApp(config) {
  const { daymindAuth } = require('./lib');
  const keys = JSON.parse(fs.readFileSync(config.storePath + '.keys.json', 'utf8'));
  let offset = 0;
  const errors = [];
  const auth = daymindAuth({
    env: {},
    storePath: config.storePath,
    billing: 'stripe',
    stripeSecretKey: 'sk_test_bench',
    stripeApiBase: `http://127.0.0.1:${config.stripePort}`,
    billingWindow: `${config.windowSeconds}s`,
    rateLimitPerMinute: 1_000_000,
    ipRateLimitPerMinute: false,
    history: false,
    now: () => Date.now() + offset,
    onError: (err) => errors.length < 20 && errors.push(err.message),
  });
  await auth.ready;
  const outboxPath = path.join(path.dirname(config.storePath), 'billing-outbox.jsonl');
  const windowMs = config.windowSeconds * 1000;
  // The load starts at a window's start on the app's clock.
  offset = (windowMs - (Date.now() % windowMs)) % windowMs;
  const windowStartMs = Date.now() + offset;
  let outboxMax = 0;
  const sampler = setInterval(() => {
    try {
      outboxMax = Math.max(outboxMax, fs.statSync(outboxPath).size);
    } catch {
      // not written yet
    }
  }, 100);
  const cpuBefore = process.cpuUsage();
  const loadMs = windowMs - 3000; // the last counts are flushed inside the window
  let allowed = 0;
  let refused = 0;
  const ticks = 100;
  const perTick = Math.ceil(keys.length / ticks);
  const loadStart = Date.now();
  for (let tick = 0; Date.now() - loadStart < loadMs; tick++) {
    const from = (tick % ticks) * perTick;
    const results = await Promise.all(keys.slice(from, from + perTick).map((key) => auth.verify(key)));
    for (const r of results) {
      if (r.valid) allowed++;
      else refused++;
    }
    const next = loadStart + (tick + 1) * (1000 / ticks);
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  const loadSeconds = (Date.now() - loadStart) / 1000;
  await auth.flush();
  const cpu = process.cpuUsage(cpuBefore);
  const windowEndMs = windowStartMs + windowMs;
  // Delivered: the window closed (after its end and the wait for flushes under way) and every report settled.
  const deadline = Date.now() + windowMs + 120_000;
  let stats = await auth.stats();
  while (Date.now() < deadline && !(Date.now() + offset > windowEndMs && stats.billingOutboxDepth === 0)) {
    await new Promise((r) => setTimeout(r, 200));
    stats = await auth.stats();
  }
  const deliveredAtMs = Date.now() + offset;
  clearInterval(sampler);
  await auth.close();
  const ledgerDir = path.dirname(config.storePath);
  const ledgerLines = fs
    .readdirSync(ledgerDir)
    .filter((f) => /^ledger-.*\.jsonl$/.test(f))
    .reduce((n, f) => n + fs.readFileSync(path.join(ledgerDir, f), 'utf8').split('\n').filter(Boolean).length, 0);
  return {
    keys: keys.length,
    offsetMs: offset,
    windowStartMs,
    windowEndMs,
    loadSeconds,
    allowed,
    refused,
    loadCpuPercent: ((cpu.user + cpu.system) / 1000 / (loadSeconds * 1000)) * 100,
    delivered: stats.billingOutboxDepth === 0,
    deliveredAtMs,
    outboxMaxBytes: outboxMax,
    ledgerLines,
    errors,
  };
}

/** Runs the scenario for `keys` keys; `dir` is its scratch directory. */
async function billingScenario({ keys, dir, windowSeconds = 60, latencyMs = 100 }) {
  const storePath = path.join(dir, `billing-${keys}`, 'api_keys.json');
  writeBillingStore(storePath, keys);
  const stripe = nodeChild(1, 'stripe-like.js', [String(latencyMs)]);
  try {
    const { port } = await nextMessage(stripe, 'ready', 30_000);
    stripe.send({ type: 'window', seconds: windowSeconds });
    const app = nodeChild(0, 'billing.js', ['app', JSON.stringify({ storePath, stripePort: port, windowSeconds })]);
    let result;
    try {
      result = payload(await nextMessage(app, 'result', (windowSeconds + 300) * 1000));
    } finally {
      await stop(app);
    }
    const server = payload(await ask(stripe, { type: 'stats' }, 'stats', 10_000));
    const window = server.windows[String(result.windowStartMs / 1000)] ?? { units: 0, events: 0, lastAcceptMs: null };
    const lastAckMs = window.lastAcceptMs == null ? null : window.lastAcceptMs + result.offsetMs;
    const deliverySeconds = server.firstCallMs && server.lastAcceptMs ? (server.lastAcceptMs - server.firstCallMs) / 1000 : null;
    return {
      keys,
      window_seconds: windowSeconds,
      latency_ms: latencyMs,
      load_seconds: result.loadSeconds,
      units_allowed: result.allowed,
      units_billed: server.units,
      units_offered_per_second: result.allowed / result.loadSeconds,
      units_billed_per_second: server.units / result.loadSeconds,
      meter_events: server.events,
      meter_calls: server.calls,
      meter_calls_per_second_mean: deliverySeconds ? server.calls / deliverySeconds : null,
      meter_calls_per_second_max: server.maxCallsPerSecond,
      refused_429: server.refused429,
      refused_400: server.refused400,
      replays: server.replays,
      delivery_seconds: deliverySeconds,
      outbox_max_bytes: result.outboxMaxBytes,
      lag_seconds: lastAckMs == null ? null : (lastAckMs - result.windowEndMs) / 1000,
      all_delivered: result.delivered && server.units === result.allowed,
      ledger_lines: result.ledgerLines,
      ledger_lines_per_key_and_window: result.ledgerLines / keys,
      windows_billed: Object.keys(server.windows).length,
      app_cpu_percent_during_load: result.loadCpuPercent,
      errors: result.errors,
    };
  } finally {
    await stop(stripe);
  }
}

if (require.main === module && process.argv[2] === 'app') {
  exitWithParent();
  runApp(JSON.parse(process.argv[3])).then(
    (result) => process.send({ type: 'result', ...result }),
    (err) => process.send({ type: 'error', message: `billing app: ${err.stack ?? err}` }),
  );
}

module.exports = { billingScenario };
