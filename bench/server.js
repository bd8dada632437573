'use strict';
// One benchmark server: `node bench/server.js <scenario> '<json config>'`. Listens on a free
// port of 127.0.0.1 and sends { type: 'ready', port, key } to the parent; GET /hello answers
// { hello: 'world' } behind the scenario's middleware.
const http = require('node:http');
const fs = require('node:fs');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const express = require('express');
const { rateLimit } = require('express-rate-limit');
const { exitWithParent } = require('./proc');

const [scenario, rawConfig = '{}'] = process.argv.slice(2);
const config = JSON.parse(rawConfig);
// default_before: the default product as built from the baseline commit (`--baseline`).
const { daymindAuth } = config.lib ? require(config.lib) : require('./lib');

const HUGE = 1e9;
const onError = (err) => console.error(`[bench ${scenario}] ${err.message}`);

function daymind(options) {
  return daymindAuth({ env: {}, billing: false, rateLimitPerMinute: HUGE, ipRateLimitPerMinute: HUGE, onError, ...options });
}

const erl = () => rateLimit({ windowMs: 60_000, limit: HUGE, standardHeaders: 'draft-8', legacyHeaders: false });

/** The record of the request's Bearer token in `known` (a Map by key), or undefined. */
function bearerRecord(known, req) {
  const header = req.headers.authorization;
  return header?.startsWith('Bearer ') ? known.get(header.slice(7)) : undefined;
}

/** A hand-rolled API-key check: a Map look-up of the Bearer token, 401 otherwise. */
function mapKeyCheck(keys) {
  const known = new Map(keys.map((key) => [key, { owner: 'bench' }]));
  return (req, res, next) => {
    if (bearerRecord(known, req)) next();
    else res.status(401).json({ error: 'unauthorized' });
  };
}

/**
 * The least a hand-rolled equivalent of the default product does: a Map look-up of the Bearer
 * token (401 otherwise), a request counter per key and one for the client, the two RateLimit
 * fields for an "ip" and a "key" policy, and the key's record kept for the handler (in a WeakMap
 * by request, as req.daymind is). No windows, no IP address, nothing written anywhere.
 */
function handRolled(keys) {
  const known = new Map(keys.map((key) => [key, { owner: 'bench', count: 0 }]));
  const byRequest = new WeakMap();
  const policy = `"ip";q=${HUGE};w=60, "key";q=${HUGE};w=60`;
  let ipCount = 0;
  return (req, res, next) => {
    const record = bearerRecord(known, req);
    if (!record) return void res.status(401).json({ error: 'unauthorized' });
    record.count++;
    ipCount++;
    res.setHeader('RateLimit-Policy', policy);
    res.setHeader('RateLimit', `"ip";r=${HUGE - ipCount};t=60, "key";r=${HUGE - record.count};t=60`);
    byRequest.set(req, record);
    next();
  };
}

/** The scenario's middleware (in order), the key to request with, and its daymindAuth if any. */
async function setup() {
  switch (scenario) {
    case 'bare':
      return { middleware: [], key: config.key };
    case 'noop':
      return { middleware: [(req, res, next) => next()], key: config.key };
    case 'erl':
      return { middleware: [erl()], key: config.key };
    case 'erl_apikey':
      return { middleware: [erl(), mapKeyCheck([config.key])], key: config.key };
    case 'handrolled':
      return { middleware: [handRolled([config.key])], key: config.key };
    case 'default':
    case 'default_before':
    case 'keys10':
    case 'keys10k':
    case 'flush10k': {
      const auth = daymind({ storePath: config.storePath, flushIntervalMs: config.flushIntervalMs });
      await auth.ready;
      return { middleware: [auth], key: config.key, auth };
    }
    case 'redis': {
      const auth = daymind({ redis: config.redisUrl, keyStore: 'redis' });
      await auth.ready;
      const { key } = await auth.store.create({ owner: 'bench' });
      return { middleware: [auth], key, auth };
    }
    case 'postgres':
    case 'flush_pg': {
      const flushIntervalMs = scenario === 'flush_pg' ? 3_600_000 : undefined;
      const auth = daymind({ keyStore: 'postgres', databaseUrl: config.databaseUrl, databaseSchema: config.schema, flushIntervalMs });
      await auth.ready;
      const { key } = await auth.store.create({ owner: 'bench' });
      if (scenario === 'flush_pg') await importKeys(auth.store);
      return { middleware: [auth], key, auth };
    }
    default:
      throw new Error(`unknown scenario "${scenario}"`);
  }
}

/** flush_pg: the keys of the keys file put in the PostgreSQL store directly (as migrate does), much faster than create(). */
async function importKeys(store) {
  const { hashKey, displayPrefix } = require('./lib');
  const keys = JSON.parse(fs.readFileSync(config.keysFile, 'utf8'));
  const now = Date.now() / 1000;
  await store.importRecords(
    keys.map((key, i) => ({
      raw: {
        owner: `bench-owner-${i}`,
        created_at: now,
        usage_count: 0,
        requests_today: 0,
        requests_day: 0,
        last_used: null,
        revoked: false,
        key_prefix: displayPrefix(key),
      },
      hash: hashKey(key),
      legacy: false,
    })),
  );
}

/**
 * flush10k: counts usage for many keys of the 10k store (verify, no HTTP) so that the measured
 * flush has real work, then on request (measureFlush) gives the longest event-loop stall under
 * load: first for `baselineMs` without a flush, then from `auth.flush()` until that batch is
 * written (or `timeoutMs` passed).
 */
async function countUsage(auth) {
  const keys = JSON.parse(fs.readFileSync(config.keysFile, 'utf8'));
  for (const key of keys) {
    const result = await auth.verify(key);
    if (!result.valid) throw new Error(`verify of a stored key gave ${result.code}`);
  }
  return keys.length;
}

/** Resolves after `ms`, without keeping the process alive. */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/**
 * Resolves with { keys, ms } when the next `store.applyUsage` call ends. auth.flush() writes batch
 * after batch while usage keeps coming (so under load it may not resolve for long); the first
 * batch is the one holding the counted keys, so that is the flush measured.
 */
function nextBatch(store) {
  const original = store.applyUsage;
  return new Promise((resolve, reject) => {
    store.applyUsage = function (deltas, batch) {
      store.applyUsage = original;
      const started = process.hrtime.bigint();
      const written = original.call(store, deltas, batch);
      written.then(() => resolve({ keys: deltas.length, ms: Number(process.hrtime.bigint() - started) / 1e6 }), reject);
      return written;
    };
  });
}

async function measureFlush(auth, baselineMs, timeoutMs) {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  await sleep(baselineMs);
  histogram.disable();
  const baselineMaxMs = histogram.max / 1e6;
  histogram.reset();
  const batch = nextBatch(auth.store);
  batch.catch(() => undefined); // a failure after the timeout is not this measurement's
  histogram.enable();
  const started = process.hrtime.bigint();
  auth.flush().catch((err) => onError(err));
  const written = await Promise.race([batch, sleep(timeoutMs).then(() => undefined)]);
  const flushMs = Number(process.hrtime.bigint() - started) / 1e6;
  histogram.disable();
  return { baselineMaxMs, flushMaxMs: histogram.max / 1e6, flushMs, flushFinished: written !== undefined, batchKeys: written?.keys };
}

/**
 * The re-read of a write by another process: the longest event-loop stall from now (the other
 * process has just written) until the store shows more usage for `probeHash` than `before` (its
 * count before that write). Resolves with the figures (after `timeoutMs`, with `reloadSeen` false).
 */
function measureReload(auth, probeHash, before, timeoutMs) {
  const seen = () => usageOf(auth, probeHash) > before;
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const started = process.hrtime.bigint();
  return (async () => {
    const deadline = Date.now() + timeoutMs;
    while (!seen() && Date.now() < deadline) await sleep(2);
    histogram.disable();
    return { reloadMaxMs: histogram.max / 1e6, reloadMs: Number(process.hrtime.bigint() - started) / 1e6, reloadSeen: seen() };
  })();
}

/** The store's usage_count of a key (0 when absent). */
const usageOf = (auth, hash) => auth.store.get(hash)?.usage_count ?? 0;

/** CPU time this process has used, user and system, in microseconds. */
function cpuMicros() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

async function main() {
  exitWithParent();
  const { middleware, key, auth } = await setup();
  const app = express();
  for (const m of middleware) app.use(m);
  app.get('/hello', (req, res) => res.json({ hello: 'world' }));
  const countedKeys = scenario === 'flush10k' || scenario === 'flush_pg' ? await countUsage(auth) : undefined;
  const server = http.createServer(app);
  server.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: server.address().port, key, countedKeys }));
  process.on('message', (msg) => {
    if (msg?.type === 'cpu') process.send({ type: 'cpu', micros: cpuMicros() });
    if (msg?.type === 'usage-of') process.send({ type: 'usage-of', usage: usageOf(auth, msg.hash) });
    if (msg?.type === 'measure-reload') {
      measureReload(auth, msg.probeHash, msg.before, msg.timeoutMs).then(
        (figures) => process.send({ type: 'reload-measured', ...figures }),
        (err) => process.send({ type: 'error', message: `reload: ${err.message}` }),
      );
    }
    if (msg?.type !== 'measure-flush') return;
    measureFlush(auth, msg.baselineMs, msg.timeoutMs).then(
      (figures) => process.send({ type: 'flush-measured', ...figures }),
      (err) => process.send({ type: 'error', message: `flush: ${err.message}` }),
    );
  });
}

main().catch((err) => {
  process.send?.({ type: 'error', message: `${scenario} server: ${err.stack ?? err}` });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100);
});
