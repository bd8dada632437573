'use strict';
// Micro-benchmark of the verify path alone (no HTTP): key checks, hash, look-up, limiter consume,
// usage count. `node bench/micro.js <memory|json> <seconds> <warmupSeconds> [storePath key]`;
// sends { type: 'result', opsPerSec, ops, seconds }. Run pinned to one core.
const { performance } = require('node:perf_hooks');
const { daymindAuth, MemoryKeyStore } = require('./lib');
const { exitWithParent } = require('./proc');

const [kind, seconds, warmup, storePath, storeKey] = process.argv.slice(2);
const BATCH = 1000;

async function setup() {
  const common = { env: {}, billing: false, rateLimitPerMinute: 1e9, ipRateLimitPerMinute: 1e9 };
  if (kind === 'memory') {
    const auth = daymindAuth({ ...common, store: new MemoryKeyStore() });
    await auth.ready;
    const { key } = await auth.store.create({ owner: 'bench' });
    return { auth, key };
  }
  if (kind === 'json') {
    const auth = daymindAuth({ ...common, storePath });
    await auth.ready;
    return { auth, key: storeKey };
  }
  throw new Error(`unknown store kind "${kind}"`);
}

/** Sequential awaited verify calls for `s` seconds; yields to the event loop every BATCH calls. */
async function loop(auth, key, s) {
  const start = performance.now();
  const end = start + s * 1000;
  let ops = 0;
  do {
    for (let i = 0; i < BATCH; i++) {
      const result = await auth.verify(key);
      if (!result.valid) throw new Error(`verify gave ${result.code}`);
    }
    ops += BATCH;
    await new Promise(setImmediate);
  } while (performance.now() < end);
  return { ops, seconds: (performance.now() - start) / 1000 };
}

async function main() {
  exitWithParent();
  const { auth, key } = await setup();
  await loop(auth, key, Number(warmup));
  const { ops, seconds: elapsed } = await loop(auth, key, Number(seconds));
  await auth.close();
  process.send({ type: 'result', kind, ops, seconds: elapsed, opsPerSec: ops / elapsed });
}

main().catch((err) => {
  process.send?.({ type: 'error', message: `micro ${kind}: ${err.stack ?? err}` });
  setTimeout(() => process.exit(1), 100);
});
