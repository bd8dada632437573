/**
 * daymind-auth without Express: a plain `node:http` server (`node build/examples/node-http.js`).
 * The same keys, limits, headers and usage counting as the Express example (examples/server.ts),
 * configured from the same environment (API_KEY_STORE_PATH, API_RATE_LIMIT_PER_MINUTE,
 * IP_RATE_LIMIT_PER_MINUTE, API_KEYS, KEY_STORE, REDIS_URL, ...) plus PORT (default 3000).
 *
 * Every request under /v1 goes through verifyRequest(): the per-IP limit, then the key by
 * auth.verify(), which counts an allowed request at once (GET /v1/usage spends and counts nothing:
 * `peek`, as the Express usage router does). It answers as the middleware would:
 * refused requests get its status, headers and JSON body; allowed ones its RateLimit headers.
 * See docs/outside-express.md.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { daymindAuth, usageBody, verifyRequest, ConfigError, type VerifyResult } from '../src';

function portFromEnv(): number {
  const raw = process.env.PORT ?? '3000';
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new ConfigError('PORT', `must be a TCP port number, got ${JSON.stringify(raw)}`);
  return port;
}

const port = portFromEnv();
const auth = daymindAuth();

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

/** `GET /v1/usage`: the calling key's counters and where it stands against its limits, as `auth.usageRouter()` serves them. */
async function usageOf(result: VerifyResult): Promise<unknown> {
  const hash = result.record!.key_hash;
  const record = (auth.store.fetch ? await auth.store.fetch(hash) : await auth.store.get(hash)) ?? result.record!;
  return usageBody(record, auth.usage(record), result);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  if (path === '/' && req.method === 'GET') {
    sendJson(res, 200, { endpoints: ['GET /v1/hello', 'GET /v1/usage'], auth: 'Authorization: Bearer <key> or X-API-Key: <key>' });
    return;
  }
  if (path === '/v1' || path.startsWith('/v1/')) {
    // The key check: a refusal is answered here, whole; an allowed request carries the RateLimit headers on.
    // GET /v1/usage checks the key only (peek): it answers while the key is rate-limited, and is not usage.
    const check = await verifyRequest(auth, req, { peek: req.method === 'GET' && path === '/v1/usage' });
    if (!check.allowed) {
      res.writeHead(check.status, check.headers).end(check.body);
      return;
    }
    for (const [name, value] of Object.entries(check.headers)) res.setHeader(name, value);
    const result = check.result!;
    if (req.method === 'GET' && path === '/v1/hello') {
      sendJson(res, 200, { message: `Hello, ${result.record!.owner}!`, key: result.record!.key_prefix });
      return;
    }
    if (req.method === 'GET' && path === '/v1/usage') {
      sendJson(res, 200, await usageOf(result), { 'Cache-Control': 'no-store' });
      return;
    }
  }
  sendJson(res, 404, { error: { code: 'not_found', message: `There is no ${req.method} ${path}; GET / lists the endpoints.` } });
}

const server = createServer((req, res) => {
  handle(req, res).catch((err: unknown) => {
    // Never a stack to the client: the JSON error shape, the stack on stderr.
    console.error(`${req.method} ${req.url} failed: ${err instanceof Error ? err.stack : String(err)}`);
    if (!res.headersSent)
      sendJson(res, 500, { error: { code: 'internal_server_error', message: 'The server could not answer this request.' } });
    else res.destroy();
  });
});

server.on('error', (err: NodeJS.ErrnoException) => {
  console.error(err.code === 'EADDRINUSE' ? `port ${port} is already in use (set PORT to use another)` : `cannot listen: ${err.message}`);
  process.exit(1);
});
server.listen(port, async () => {
  const address = server.address();
  const url = `http://localhost:${typeof address === 'object' && address ? address.port : port}`;
  console.log(`daymind-auth node:http example listening on ${url}`);
  await auth.ready; // the store must be loaded (or connected, on Redis) before it is listed
  const keys = await auth.store.list();
  if (keys.length === 0 && !process.env.API_KEYS) {
    const { key } = await auth.store.create({ owner: 'demo', scopes: ['read', 'write'] });
    console.log(`\nThe store was empty, so a demo key was created for owner "demo". It is shown only this once:\n\n  ${key}\n`);
    console.log(`Try it:\n\n  curl -H "Authorization: Bearer ${key}" ${url}/v1/hello\n  curl -H "X-API-Key: ${key}" ${url}/v1/usage\n`);
  } else {
    console.log(`\n${keys.length} key(s) in the store. Call it with:\n\n  curl -H "Authorization: Bearer <key>" ${url}/v1/hello\n`);
  }
  console.log(`Create another key with: npx daymind-keys create my-team`);
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: closing, flushing usage...`);
  server.close();
  server.closeIdleConnections();
  try {
    await auth.close(); // writes the usage counted since the last flush
    console.log('usage flushed; bye');
    process.exit(0);
  } catch (err) {
    console.error(`could not flush usage: ${(err as Error).message}`);
    process.exit(1);
  }
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
