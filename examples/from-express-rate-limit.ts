/**
 * From express-rate-limit to daymind-auth: `npm run build:examples && node build/examples/from-express-rate-limit.js`.
 *
 * The app had this limiter (express-rate-limit 7 or 8):
 *
 *   app.use(
 *     rateLimit({
 *       windowMs: 60_000,
 *       limit: 5,
 *       standardHeaders: 'draft-8',
 *       legacyHeaders: true,
 *       skip: (req) => req.path === '/health',
 *       handler: (req, res, next, options) => res.status(options.statusCode).json({ message: 'Slow down, please.' }),
 *     }),
 *   );
 *
 * Here the same habits hold per API key instead of per address (the address keeps a limit of its
 * own, IP_RATE_LIMIT_PER_MINUTE), and the key's usage is counted. docs/express-rate-limit.md maps
 * every option.
 */
import express from 'express';
import { daymindAuth } from '../src';

const auth = daymindAuth({
  rateLimitPerMinute: 5, // windowMs: 60_000, limit: 5, per key
  legacyHeaders: true, // X-RateLimit-Limit, -Remaining, -Reset beside the IETF RateLimit fields
  skip: (req) => req.path === '/health',
  handler: (req, res, next, refusal) => {
    // The status and the RateLimit, Retry-After and WWW-Authenticate fields are set already.
    if (refusal.status === 429) res.json({ message: 'Slow down, please.' });
    else res.json(refusal.body); // other refusals (401 for a missing key...) as daymind-auth answers them
  },
});

const app = express();
app.use(auth);
app.get('/health', (req, res) => res.json({ ok: true }));
app.get('/v1/hello', (req, res) => res.json({ hello: req.daymind!.owner }));

const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port);
server.on('error', (err: NodeJS.ErrnoException) => {
  console.error(err.code === 'EADDRINUSE' ? `port ${port} is already in use (set PORT to use another)` : `cannot listen: ${err.message}`);
  process.exit(1);
});
server.once('listening', async () => {
  await auth.ready;
  const { key } = await auth.store.create({ owner: 'migrated-co' });
  const address = server.address();
  console.log(`listening on http://localhost:${typeof address === 'object' && address ? address.port : port}`);
  console.log(`demo key: ${key}`);
});
process.once('SIGTERM', () => {
  server.close();
  void auth.close().then(() => process.exit(0));
});
