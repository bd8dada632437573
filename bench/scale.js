'use strict';
// Scale figures of the 100k-key store.
// - storeLoad: time of `new JsonFileKeyStore({ path })` and RSS growth, in a fresh child
//   (`node bench/scale.js load <path>` is that child);
// - flushStall: the longest event-loop stall while `auth.flush()` writes usage for 10,000 keys of
//   the store, with the server under load (monitorEventLoopDelay, 1 ms resolution). A flush still
//   running after `timeoutMs` is reported as such, with the longest stall seen until then.
const { nodeChild, nextMessage, ask, payload, stop } = require('./proc');

/** In the child: load the store once and report. */
function measureLoadHere(path) {
  const { JsonFileKeyStore } = require('./lib');
  const before = process.memoryUsage();
  const started = process.hrtime.bigint();
  const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
  const loadMs = Number(process.hrtime.bigint() - started) / 1e6;
  const after = process.memoryUsage();
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  return {
    keys: store.size(),
    loadMs,
    rssGrowthMB: (after.rss - before.rss) / 2 ** 20,
    peakRssGrowthMB: (peakRssBytes - before.rss) / 2 ** 20,
    heapGrowthMB: (after.heapUsed - before.heapUsed) / 2 ** 20,
  };
}

async function storeLoad(path) {
  const child = nodeChild(0, 'scale.js', ['load', path]);
  try {
    return payload(await nextMessage(child, 'result', 60_000));
  } finally {
    await stop(child);
  }
}

/**
 * Starts the flush100k server (flush only on request), puts it under load from the load
 * generator, measures `baselineMs` without a flush and then the flush, and stops the load.
 */
async function flushStall({ load, storePath, keysFile, key, connections, baselineMs, leadMs, timeoutMs }) {
  const config = { storePath, keysFile, key, flushIntervalMs: 3_600_000 };
  const server = nodeChild(0, 'server.js', ['flush100k', JSON.stringify(config)]);
  let loadResult;
  try {
    const ready = await nextMessage(server, 'ready', 120_000);
    const url = `http://127.0.0.1:${ready.port}/hello`;
    loadResult = nextMessage(load, 'result', 120_000);
    loadResult.catch(() => undefined);
    load.send({ type: 'run', url, headers: { authorization: `Bearer ${key}` }, connections, duration: 600, warmup: 0 });
    await new Promise((resolve) => setTimeout(resolve, leadMs));
    const measured = await ask(server, { type: 'measure-flush', baselineMs, timeoutMs }, 'flush-measured', timeoutMs + 30_000);
    load.send({ type: 'stop' });
    const underLoad = payload(await loadResult);
    return {
      countedKeys: ready.countedKeys,
      flushMaxStallMs: measured.flushMaxMs,
      baselineMaxStallMs: measured.baselineMaxMs,
      flushMs: measured.flushMs,
      flushFinished: measured.flushFinished,
      flushBatchKeys: measured.batchKeys,
      load: underLoad,
    };
  } finally {
    if (loadResult && load.connected) {
      load.send({ type: 'stop' });
      await loadResult.catch(() => undefined);
    }
    await stop(server);
  }
}

if (require.main === module) {
  const [mode, path] = process.argv.slice(2);
  try {
    if (mode !== 'load') throw new Error(`unknown mode "${mode}"`);
    process.send({ type: 'result', ...measureLoadHere(path) });
  } catch (err) {
    process.send({ type: 'error', message: `scale ${mode}: ${err.stack ?? err}` });
  }
  process.on('disconnect', () => process.exit(0));
}

module.exports = { storeLoad, flushStall };
