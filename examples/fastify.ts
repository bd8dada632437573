/**
 * daymind-auth in a Fastify app (`node build/examples/fastify.js`): the same keys, limits, headers
 * and usage counting as the Express example (examples/server.ts), configured from the same
 * environment (API_KEY_STORE_PATH, API_RATE_LIMIT_PER_MINUTE, IP_RATE_LIMIT_PER_MINUTE, API_KEYS,
 * KEY_STORE, REDIS_URL, ...) plus PORT (default 3000) and HOST (default `::`, every address).
 *
 * An onRequest hook on the /v1 routes runs verifyRequest() on the raw request: the per-IP limit,
 * then the key by auth.verify(), which counts an allowed request at once (GET /v1/usage spends and
 * counts nothing: `peek`, as the Express usage router does). A refusal is answered
 * from the hook with the middleware's status, headers and JSON body; an allowed request gets the
 * RateLimit headers and `request.daymind` (the verify result, with the key's record).
 * See docs/outside-express.md.
 */
import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { daymindAuth, usageBody, verifyRequest, ConfigError, type VerifyResult } from '../src';

declare module 'fastify' {
  interface FastifyRequest {
    /** The key check of an allowed request under /v1. */
    daymind?: VerifyResult;
  }
}

function portFromEnv(): number {
  const raw = process.env.PORT ?? '3000';
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new ConfigError('PORT', `must be a TCP port number, got ${JSON.stringify(raw)}`);
  return port;
}

const port = portFromEnv();
const auth = daymindAuth();
const app = Fastify();
// Closing the app (on SIGTERM below) stops daymind-auth too, writing the usage counted since the last flush.
app.addHook('onClose', async () => {
  await auth.close();
});
app.decorateRequest('daymind', undefined);

app.get('/', async () => ({ endpoints: ['GET /v1/hello', 'GET /v1/usage'], auth: 'Authorization: Bearer <key> or X-API-Key: <key>' }));

void app.register(
  async (v1) => {
    // Runs for every request under /v1, its 404s included (the not-found handler below is this plugin's).
    v1.addHook('onRequest', async (request, reply) => {
      // GET /v1/usage checks the key only: it must answer while the key is rate-limited, and is not usage.
      const peek = request.method === 'GET' && request.url.split('?')[0] === '/v1/usage';
      const check = await verifyRequest(auth, request.raw, { clientAddress: request.ip, peek });
      reply.headers(check.headers);
      if (!check.allowed) return reply.code(check.status).send(check.body);
      request.daymind = check.result;
    });

    v1.get('/hello', async (request) => {
      const record = request.daymind!.record!;
      return { message: `Hello, ${record.owner}!`, key: record.key_prefix };
    });

    // The calling key's counters and where it stands against its limits, as auth.usageRouter() serves them.
    v1.get('/usage', async (request, reply) => {
      const result = request.daymind!;
      const hash = result.record!.key_hash;
      const record = (auth.store.fetch ? await auth.store.fetch(hash) : await auth.store.get(hash)) ?? result.record!;
      reply.header('Cache-Control', 'no-store');
      return usageBody(record, auth.usage(record), result);
    });

    v1.setNotFoundHandler(notFound);
  },
  { prefix: '/v1' },
);
app.setNotFoundHandler(notFound);

function notFound(request: FastifyRequest, reply: FastifyReply): void {
  const path = request.url.split('?')[0];
  void reply.code(404).send({ error: { code: 'not_found', message: `There is no ${request.method} ${path}; GET / lists the endpoints.` } });
}

// Errors in the JSON error shape, never with a stack: a client's (4xx) keeps its status, named in snake case.
app.setErrorHandler((err: FastifyError, request, reply) => {
  const given = err.statusCode ?? 500;
  const status = given >= 400 && given < 500 ? given : 500;
  if (status === 500) console.error(`${request.method} ${request.url} failed: ${err.stack}`);
  const name = STATUS_CODES[status] ?? 'Error';
  const message = status === 500 ? 'The server could not answer this request.' : `${name}.`;
  void reply.code(status).send({ error: { code: name.toLowerCase().replace(/[^a-z0-9]+/g, '_'), message } });
});

async function main(): Promise<void> {
  try {
    await app.listen({ port, host: process.env.HOST ?? '::' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    console.error(e.code === 'EADDRINUSE' ? `port ${port} is already in use (set PORT to use another)` : `cannot listen: ${e.message}`);
    await auth.close();
    process.exit(1);
  }
  const address = app.server.address();
  const url = `http://localhost:${typeof address === 'object' && address ? address.port : port}`;
  console.log(`daymind-auth Fastify example listening on ${url}`);
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
}

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: closing, flushing usage...`);
  try {
    await app.close(); // stops listening, waits for requests in flight, then auth.close() (onClose)
    console.log('usage flushed; bye');
    process.exit(0);
  } catch (err) {
    console.error(`could not flush usage: ${(err as Error).message}`);
    process.exit(1);
  }
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

void main();
