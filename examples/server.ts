/**
 * The quick-start server: `npm run example`.
 * Configured from the environment like the library (API_KEY_STORE_PATH, API_RATE_LIMIT_PER_MINUTE,
 * IP_RATE_LIMIT_PER_MINUTE, API_KEYS, DAYMIND_PLANS_FILE, KEY_STORE, REDIS_URL, ...) plus PORT
 * (default 3000). With `DAYMIND_PLANS_FILE=examples/plans.json`, keys on the Free and Pro plans get
 * their plan's windows and monthly quota; see docs/plans.md.
 */
import express from 'express';
import { daymindAuth, metricsHandler, jsonErrorHandler, ConfigError } from '../src';

function portFromEnv(): number {
  const raw = process.env.PORT ?? '3000';
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new ConfigError('PORT', `must be a TCP port number, got ${JSON.stringify(raw)}`);
  return port;
}

const port = portFromEnv();
// A request the server failed (5xx) is neither counted nor billed; nor is one whose client went
// away before the response was sent, whatever its status.
const auth = daymindAuth({ billable: (_req, res) => res.statusCode < 500 });
const app = express();

/** `1s`, `15m`, `1d`: a window in the plans file's notation. */
function windowText(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  return seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

/** One line per plan in force: its windows, monthly quota and description. */
function planLines(): string[] {
  return [...auth.config.plans.values()].map((plan) => {
    const windows = plan.windows.map((w) => `"${w.name}" ${w.limit}/${windowText(w.windowSeconds)}`).join(', ') || 'no windows';
    const quota = plan.monthlyQuota === null ? 'no monthly quota' : `monthly quota ${plan.monthlyQuota}`;
    return `  ${plan.name}: ${windows}; ${quota}${plan.description ? ` (${plan.description})` : ''}`;
  });
}

app.get('/', (_req, res) => {
  res.json({
    endpoints: [
      'GET /v1/hello',
      'POST /v1/echo (JSON body; needs scope "write"; costs 5 units)',
      'GET /v1/usage',
      'GET /v1/usage/history?days=30',
      'GET /v1/usage/dashboard (page, opens without a key)',
    ],
    auth: 'Authorization: Bearer <key> or X-API-Key: <key>',
  });
});
// Prometheus metrics, outside /v1 so that they need no key (in production: protect it or serve it on another port).
app.get('/metrics', metricsHandler(auth));
// Everything under /v1 needs a key, but for the usage router's page; its data routes check the key
// themselves and spend nothing (the middleware hands the router its routes untouched).
app.use('/v1', auth, auth.usageRouter({ dashboard: true }));
app.get('/v1/hello', (req, res) => {
  res.json({ message: `Hello, ${req.daymind!.owner}!`, key: req.daymind!.keyPrefix });
});
// The scope is checked before the cost is taken, so that a key without "write" is refused (403)
// without being charged; the body is parsed only once the request is paid for.
app.post('/v1/echo', auth.requireScope('write'), auth.cost(5), express.json(), (req, res) => {
  res.json({ echo: req.body ?? null, cost: 5, owner: req.daymind!.owner });
});
// Errors are answered in JSON like the refusals, never with Express's HTML page and its stack
// trace: a body that is not JSON (400 invalid_json), one over express.json()'s 100 kB (413
// payload_too_large), a route that throws (500, its stack on stderr only); an unknown route, 404.
app.use((req, res) => {
  res.status(404).json({ error: { code: 'not_found', message: `There is no ${req.method} ${req.path}; GET / lists the endpoints.` } });
});
app.use(jsonErrorHandler());

// Listening is reported by the server's events rather than app.listen's callback: Express 5 calls
// that callback with the error when the port is in use, Express 4 never calls it then.
const server = app.listen(port);
server.on('error', (err: NodeJS.ErrnoException) => {
  console.error(err.code === 'EADDRINUSE' ? `port ${port} is already in use (set PORT to use another)` : `cannot listen: ${err.message}`);
  process.exit(1);
});
server.once('listening', async () => {
  const address = server.address();
  const url = `http://localhost:${typeof address === 'object' && address ? address.port : port}`;
  console.log(`daymind-auth example listening on ${url}`);
  const plans = planLines();
  if (plans.length > 0) console.log(`\nPlans in force (${process.env.DAYMIND_PLANS_FILE}):\n${plans.join('\n')}`);
  await auth.ready; // the store must be loaded (or connected, on Redis) before it is listed
  const keys = await auth.store.list();
  if (keys.length === 0 && !process.env.API_KEYS) {
    const plan = auth.config.plans.keys().next().value;
    const { key } = await auth.store.create({ owner: 'demo', scopes: ['read', 'write'], ...(plan ? { plan } : {}) });
    const onPlan = plan ? `, on the plan "${plan}"` : '';
    console.log(
      `\nThe store was empty, so a demo key was created for owner "demo" with the scopes read and write${onPlan}. It is shown only this once:\n\n  ${key}\n`,
    );
    console.log(
      `Try it:\n\n  curl -H "Authorization: Bearer ${key}" ${url}/v1/hello\n  curl -H "Authorization: Bearer ${key}" ${url}/v1/usage\n` +
        `  curl -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" -d '{"hello":"world"}' ${url}/v1/echo\n`,
    );
  } else {
    console.log(`\n${keys.length} key(s) in the store. Call it with:\n\n  curl -H "Authorization: Bearer <key>" ${url}/v1/hello\n`);
  }
  const store = process.env.API_KEY_STORE_PATH ? ` --store ${process.env.API_KEY_STORE_PATH}` : '';
  console.log(`Create another key (shown once), list, revoke or rotate keys while this server runs:\n`);
  console.log(`  node dist/cjs/cli/index.js${store} create my-team   (npx daymind-keys ... where the package is installed)`);
  console.log(`  node dist/cjs/cli/index.js${store} list\n`);
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: closing, flushing usage...`);
  server.close();
  server.closeIdleConnections();
  try {
    await auth.close();
    console.log('usage flushed; bye');
    process.exit(0);
  } catch (err) {
    console.error(`could not flush usage: ${(err as Error).message}`);
    process.exit(1);
  }
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
