'use strict';
// The JSON store's figures at its stated range: `node bench/store.js [keys]` (default 10,000),
// after `npm run build`. No HTTP load: each step is timed on its own, with the longest
// event-loop stall seen during it (the longest gap between the turns of a 1 ms timer: a
// synchronous step counts as a stall of its length).
// - load: `new JsonFileKeyStore({ path })` of an indented store file (as deployments have it);
// - flush: `store.applyUsage()` of a batch for 100 keys (a busy second), then for every key;
// - reload: another process (`node bench/store.js write <path> <keys>`) writes usage for 100 keys;
//   the time of `store.refresh()` that takes its write in.
// Prints one JSON line.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const { writeStore } = require('./fixtures');

const DAY = 20261207;
const deltas = (hashes, units) => hashes.map((key_hash) => ({ key_hash, units, last_used: 1796601600, days: [{ day: DAY, units }] }));

/** Runs `fn` and returns its time and the longest gap between two turns of the event loop meanwhile, in ms. */
async function timed(fn) {
  let last = performance.now();
  let longest = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  await fn();
  const ms = performance.now() - started;
  // One more turn, so that a synchronous step at the end (or all of it) counts too.
  await new Promise((resolve) => setTimeout(resolve, 5));
  clearInterval(ticker);
  return { ms: Math.round(ms * 10) / 10, maxStallMs: Math.round(longest * 10) / 10 };
}

async function writeHere(file, count) {
  const { JsonFileKeyStore } = require('./lib');
  const store = new JsonFileKeyStore({ path: file, reloadIntervalMs: 0 });
  const hashes = (await store.list()).slice(0, count).map((r) => r.key_hash);
  await store.applyUsage(deltas(hashes, 1));
  await store.close();
}

async function main() {
  const keys = Number(process.argv[2] ?? 10_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daymind-bench-store-'));
  try {
    const file = path.join(dir, 'api_keys.json');
    writeStore(file, keys);
    const bytes = fs.statSync(file).size;
    const { JsonFileKeyStore } = require('./lib');
    let store;
    // DAYMIND_BENCH_NO_JOURNAL=1: every flush rewrites the file (for stores that still have the option).
    const extra = process.env.DAYMIND_BENCH_NO_JOURNAL ? { usageJournal: false } : {};
    const load = await timed(() => (store = new JsonFileKeyStore({ path: file, reloadIntervalMs: 0, ...extra })));
    const hashes = (await store.list()).map((r) => r.key_hash);
    const flush100 = await timed(() => store.applyUsage(deltas(hashes.slice(0, 100), 1)));
    const flush100again = await timed(() => store.applyUsage(deltas(hashes.slice(100, 200), 1)));
    const flushAll = await timed(() => store.applyUsage(deltas(hashes, 1)));
    execFileSync(process.execPath, [path.join(__dirname, 'store.js'), 'write', file, '100']);
    const reload = await timed(() => store.refresh());
    const journal = fs.existsSync(`${file}.journal`);
    const seen = store.get(hashes[0]).usage_count === 3;
    await store.close();
    console.log(
      JSON.stringify({
        keys,
        storeBytes: bytes,
        load,
        flush100,
        flush100again,
        flushAll,
        reload,
        reloadSeen: seen,
        journalAfterFlush: journal,
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'write') writeHere(process.argv[3], Number(process.argv[4]));
else main();
