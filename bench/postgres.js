'use strict';
// The PostgreSQL figures: a database of the run's own on the machine's server (127.0.0.1:5432,
// user postgres, as the tests use it), dropped at the end; and the flush of 10,000 keys' usage to
// the PostgreSQL store under load (time and longest event-loop stall), as scale.js measures the
// JSON store's.
const crypto = require('node:crypto');
const { nodeChild, nextMessage, ask, payload, stop } = require('./proc');

const SERVER = process.env.DAYMIND_BENCH_PGHOST ?? '127.0.0.1:5432';

/** Creates `daymind_bench_<random>`; resolves with its URL and drop(), or throws when the server does not answer. */
async function createBenchDatabase() {
  const { Client } = require('pg');
  const name = `daymind_bench_${crypto.randomBytes(5).toString('hex')}`;
  const admin = async (sql) => {
    const client = new Client({ connectionString: `postgres://postgres@${SERVER}/postgres`, connectionTimeoutMillis: 3000 });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  return { url: `postgres://postgres@${SERVER}/${name}`, drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/**
 * Starts the flush_pg server (its store filled with the keys of `keysFile`, usage counted for
 * each, flush only on request), puts it under load and measures `baselineMs` without a flush,
 * then the flush of that usage: one statement for all the keys.
 */
async function pgFlushStall({ load, url, schema, keysFile, connections, baselineMs, leadMs, timeoutMs }) {
  const server = nodeChild(0, 'server.js', ['flush_pg', JSON.stringify({ databaseUrl: url, schema, keysFile })]);
  let loadResult;
  try {
    const ready = await nextMessage(server, 'ready', 120_000);
    loadResult = nextMessage(load, 'result', 120_000);
    loadResult.catch(() => undefined);
    const url = `http://127.0.0.1:${ready.port}/hello`;
    load.send({ type: 'run', url, headers: { authorization: `Bearer ${ready.key}` }, connections, duration: 600, warmup: 0 });
    await new Promise((resolve) => setTimeout(resolve, leadMs));
    const measured = await ask(server, { type: 'measure-flush', baselineMs, timeoutMs }, 'flush-measured', timeoutMs + 30_000);
    load.send({ type: 'stop' });
    const underLoad = payload(await loadResult);
    return {
      countedKeys: ready.countedKeys,
      flushBatchKeys: measured.batchKeys,
      flushMaxStallMs: measured.flushMaxMs,
      baselineMaxStallMs: measured.baselineMaxMs,
      flushMs: measured.flushMs,
      flushFinished: measured.flushFinished,
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

module.exports = { createBenchDatabase, pgFlushStall };
