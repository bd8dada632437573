/**
 * Per-plan limits from key metadata: `npm run build:examples && node build/examples/plans.js`.
 *
 * Keys carry their plan in `meta.plan` (`daymind-keys create acme --meta plan=pro`). A small
 * KeyStore decorator turns the plan into the key's per-minute limit; a key's own
 * `rate_limit_per_minute` still wins. The store underneath is the ordinary JSON file store.
 *
 * daymind-auth now has plans built in (the `plans` option or DAYMIND_PLANS_FILE, with several
 * windows, quotas and credits: docs/plans.md); keep this one as an example of a store decorator.
 */
import express from 'express';
import { daymindAuth, JsonFileKeyStore, type KeyRecord, type KeyStore } from '../src';

/** Requests per minute by plan. */
export const PLAN_LIMITS: Record<string, number> = { free: 5, pro: 50 };

/** Delegates to another store, giving each record the limit of its plan. */
export function withPlanLimits(inner: KeyStore, limits: Record<string, number>): KeyStore {
  const planned = new WeakMap<KeyRecord, KeyRecord>();
  const apply = (record: KeyRecord | undefined): KeyRecord | undefined => {
    if (!record || record.rate_limit_per_minute != null) return record;
    const limit = limits[String(record.meta?.plan ?? '')];
    if (limit === undefined) return record;
    let copy = planned.get(record);
    if (!copy) {
      copy = { ...record, rate_limit_per_minute: limit };
      planned.set(record, copy);
    }
    return copy;
  };
  return {
    init: () => inner.init?.() ?? Promise.resolve(),
    get: (hash) => {
      const found = inner.get(hash);
      return found instanceof Promise ? found.then(apply) : apply(found);
    },
    refresh: inner.refresh && (() => inner.refresh!()),
    hasUnchecksummedKeys: inner.hasUnchecksummedKeys && (() => inner.hasUnchecksummedKeys!()),
    create: (input) => inner.create(input),
    revoke: (hash) => inner.revoke(hash),
    list: () => inner.list(),
    applyUsage: (deltas, batch) => inner.applyUsage(deltas, batch),
    close: () => inner.close(),
  };
}

async function main(): Promise<void> {
  const files = new JsonFileKeyStore({ path: process.env.API_KEY_STORE_PATH ?? 'data/plans-keys.json' });
  const auth = daymindAuth({ store: withPlanLimits(files, PLAN_LIMITS) });
  const app = express();
  app.use('/v1', auth, auth.usageRouter());
  app.get('/v1/hello', (req, res) => res.json({ owner: req.daymind!.owner, plan: req.daymind!.meta.plan ?? null }));

  const free = await files.create({ owner: 'free-customer', meta: { plan: 'free' } });
  const pro = await files.create({ owner: 'pro-customer', meta: { plan: 'pro' } });
  const server = app.listen(Number(process.env.PORT ?? 3001), () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 3001;
    console.log(`plans example listening on http://localhost:${port}`);
    console.log(`free key (${PLAN_LIMITS.free}/min): ${free.key}`);
    console.log(`pro key  (${PLAN_LIMITS.pro}/min): ${pro.key}`);
  });
  const stop = () => server.close(() => void auth.close().then(() => process.exit(0)));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) void main();
