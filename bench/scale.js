'use strict';
// Scale figures of the 10,000-key store.
// - storeLoad: time of `new JsonFileKeyStore({ path })` and RSS growth, in a fresh child
//   (`node bench/scale.js load <path>` is that child);
// - flushStall: the longest event-loop stall while `auth.flush()` writes usage for 1,000 keys of
//   the store, with the server under load (monitorEventLoopDelay, 1 ms resolution). A flush still
//   running after `timeoutMs` is reported as such, with the longest stall seen until then;
// - then, with the load still on, the longest stall in that server while another process (the
//   child `node bench/scale.js write <path> <keysFile>`, on the load generator's core) writes usage
//   for the same 1,000 keys to the store, until the server has re-read it: what each process
//   sharing a JSON store goes through after every write of the others.
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

/**
 * In the child: a second process writing usage for the keys of `keysFile` to the store, once told
 * to ('go': after it has loaded the store, which takes a while).
 */
async function writeUsageHere(path, keysFile) {
  const { JsonFileKeyStore, hashKey } = require('./lib');
  const keys = JSON.parse(require('node:fs').readFileSync(keysFile, 'utf8'));
  const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
  await new Promise((resolve) => {
    process.on('message', (msg) => msg?.type === 'go' && resolve());
    process.send({ type: 'loaded' });
  });
  const day = Number(new Date().toISOString().slice(0, 10).replaceAll('-', ''));
  const started = process.hrtime.bigint();
  await store.applyUsage(
    keys.map((key) => ({ key_hash: hashKey(key), units: 1, last_used: Date.now() / 1000, days: [{ day, units: 1 }] })),
  );
  const writeMs = Number(process.hrtime.bigint() - started) / 1e6;
  await store.close();
  return { keys: keys.length, writeMs };
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
 * Starts the flush10k server (flush only on request), puts it under load from the load
 * generator, measures `baselineMs` without a flush and then the flush (and with `reread`, the
 * re-read of another process's write), and stops the load.
 */
async function flushStall({ load, storePath, keysFile, key, connections, baselineMs, leadMs, timeoutMs, reread }) {
  const config = { storePath, keysFile, key, flushIntervalMs: 3_600_000 };
  const server = nodeChild(0, 'server.js', ['flush10k', JSON.stringify(config)]);
  let loadResult;
  try {
    const ready = await nextMessage(server, 'ready', 120_000);
    const url = `http://127.0.0.1:${ready.port}/hello`;
    loadResult = nextMessage(load, 'result', 120_000);
    loadResult.catch(() => undefined);
    load.send({ type: 'run', url, headers: { authorization: `Bearer ${key}` }, connections, duration: 600, warmup: 0 });
    await new Promise((resolve) => setTimeout(resolve, leadMs));
    const measured = await ask(server, { type: 'measure-flush', baselineMs, timeoutMs }, 'flush-measured', timeoutMs + 30_000);
    const reload = reread ? await reloadStall({ server, storePath, keysFile, timeoutMs: Math.max(timeoutMs, 20_000) }) : {};
    load.send({ type: 'stop' });
    const underLoad = payload(await loadResult);
    return {
      countedKeys: ready.countedKeys,
      flushMaxStallMs: measured.flushMaxMs,
      baselineMaxStallMs: measured.baselineMaxMs,
      flushMs: measured.flushMs,
      flushFinished: measured.flushFinished,
      flushBatchKeys: measured.batchKeys,
      reloadMaxStallMs: reload.reloadMaxMs,
      reloadMs: reload.reloadMs,
      reloadSeen: reload.reloadSeen,
      otherWriteMs: reload.writeMs,
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

/**
 * With the flush10k server under load: has another process (on core 1) write usage for the keys
 * of `keysFile` to the store, then measures the server's re-read of that write.
 */
async function reloadStall({ server, storePath, keysFile, timeoutMs }) {
  const { hashKey } = require('./lib');
  const keys = JSON.parse(require('node:fs').readFileSync(keysFile, 'utf8'));
  const probeHash = hashKey(keys.at(-1));
  const writer = nodeChild(1, 'scale.js', ['write', storePath, keysFile]);
  try {
    await nextMessage(writer, 'loaded', timeoutMs);
    const { usage: before } = await ask(server, { type: 'usage-of', hash: probeHash }, 'usage-of', 10_000);
    const written = payload(await ask(writer, { type: 'go' }, 'result', timeoutMs));
    const measured = await ask(server, { type: 'measure-reload', probeHash, before, timeoutMs }, 'reload-measured', timeoutMs + 10_000);
    return { ...payload(measured), writeMs: written.writeMs };
  } finally {
    await stop(writer);
  }
}

if (require.main === module) {
  const [mode, path, keysFile] = process.argv.slice(2);
  const fail = (err) => process.send({ type: 'error', message: `scale ${mode}: ${err.stack ?? err}` });
  try {
    if (mode === 'load') process.send({ type: 'result', ...measureLoadHere(path) });
    else if (mode === 'write') writeUsageHere(path, keysFile).then((figures) => process.send({ type: 'result', ...figures }), fail);
    else throw new Error(`unknown mode "${mode}"`);
  } catch (err) {
    fail(err);
  }
  process.on('disconnect', () => process.exit(0));
}

module.exports = { storeLoad, flushStall };
