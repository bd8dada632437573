/**
 * The quick-start server: `npm run example`.
 * Configured from the environment like the library (API_KEY_STORE_PATH, API_RATE_LIMIT_PER_MINUTE,
 * IP_RATE_LIMIT_PER_MINUTE, API_KEYS) plus PORT (default 3000).
 */
import express from 'express';
import { daymindAuth, metricsHandler, ConfigError } from '../src';

function portFromEnv(): number {
  const raw = process.env.PORT ?? '3000';
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new ConfigError('PORT', `must be a TCP port number, got ${JSON.stringify(raw)}`);
  return port;
}

const port = portFromEnv();
const auth = daymindAuth();
const app = express();

app.get('/', (_req, res) => {
  res.json({
    endpoints: ['GET /v1/hello', 'GET /v1/usage', 'GET /v1/usage/history?days=30', 'GET /v1/usage/dashboard (page, opens without a key)'],
    auth: 'Authorization: Bearer <key> or X-API-Key: <key>',
  });
});
// Prometheus metrics, outside /v1 so that they need no key (in production: protect it or serve it on another port).
app.get('/metrics', metricsHandler(auth));
// The usage router first: its page loads without a key, its data routes check the key themselves.
app.use('/v1', auth.usageRouter({ dashboard: true }));
app.use('/v1', auth);
app.get('/v1/hello', (req, res) => {
  res.json({ message: `Hello, ${req.daymind!.owner}!`, key: req.daymind!.keyPrefix });
});

const server = app.listen(port, async () => {
  const address = server.address();
  const url = `http://localhost:${typeof address === 'object' && address ? address.port : port}`;
  console.log(`daymind-auth example listening on ${url}`);
  const keys = await auth.store.list();
  if (keys.length === 0 && !process.env.API_KEYS) {
    const { key } = await auth.store.create({ owner: 'demo' });
    console.log(`\nThe store was empty, so a demo key was created for owner "demo". It is shown only this once:\n\n  ${key}\n`);
    console.log(
      `Try it:\n\n  curl -H "Authorization: Bearer ${key}" ${url}/v1/hello\n  curl -H "Authorization: Bearer ${key}" ${url}/v1/usage\n`,
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
