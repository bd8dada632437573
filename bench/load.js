'use strict';
// The load generator: a long-lived child (pinned to its own core) running autocannon as a
// library. Messages: { type: 'run', url, headers, connections, duration, warmup } replies
// { type: 'result', ...summary }; { type: 'stop' } ends the current run early (its result is
// then sent as usual).
const autocannon = require('autocannon');
const { exitWithParent } = require('./proc');

let current;
exitWithParent(() => current?.stop());

function summary(r) {
  return {
    rps: r.requests.total / r.duration,
    requests: r.requests.total,
    durationS: r.duration,
    latencyMeanMs: r.latency.mean,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}

function fire(opts, duration) {
  current = autocannon({ ...opts, duration });
  return current.then((r) => {
    current = undefined;
    return r;
  });
}

async function run(msg) {
  // sampleInt: autocannon stops only on a sample tick, so the default (1 s) would round short runs up.
  const opts = { url: msg.url, headers: msg.headers, connections: msg.connections, pipelining: 1, sampleInt: 100 };
  if (msg.warmup > 0) await fire(opts, msg.warmup);
  return summary(await fire(opts, msg.duration));
}

process.on('message', (msg) => {
  if (msg?.type === 'stop') current?.stop();
  if (msg?.type !== 'run') return;
  run(msg).then(
    (result) => process.send({ type: 'result', ...result }),
    (err) => process.send({ type: 'error', message: `autocannon: ${err.message}` }),
  );
});
process.send({ type: 'ready' });
