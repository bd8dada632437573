/**
 * A KeyStore of your own: `npm run build:examples && node build/examples/custom-store.js`.
 *
 * Keys live in a Map and expire a while after they were created (short-lived keys for a demo,
 * a trial or a CI job). Implementing the interface is all it takes: daymind-auth calls `get` on
 * every request (answer from memory), and `applyUsage` once a second with the usage to add.
 */
import express from 'express';
import {
  daymindAuth,
  generateKey,
  hashKey,
  displayPrefix,
  type CreatedKey,
  type KeyRecord,
  type KeyStore,
  type NewKeyInput,
  type UsageBatch,
  type UsageDelta,
} from '../src';

export class TtlMapKeyStore implements KeyStore {
  private readonly records = new Map<string, KeyRecord>();

  constructor(private readonly ttlSeconds: number) {}

  get(keyHash: string): KeyRecord | undefined {
    const record = this.records.get(keyHash);
    if (record && record.expires_at != null && record.expires_at * 1000 <= Date.now()) {
      this.records.delete(keyHash);
      return undefined;
    }
    return record;
  }

  async create(input: NewKeyInput): Promise<CreatedKey> {
    const key = generateKey();
    const now = Date.now() / 1000;
    const record: KeyRecord = {
      key_hash: hashKey(key),
      key_prefix: displayPrefix(key),
      owner: input.owner,
      created_at: now,
      usage_count: 0,
      requests_today: 0,
      requests_day: 0,
      last_used: null,
      revoked: false,
      expires_at: now + this.ttlSeconds,
      meta: input.meta ?? {},
    };
    this.records.set(record.key_hash, record);
    return { key, record };
  }

  async revoke(keyHash: string): Promise<KeyRecord | undefined> {
    const record = this.records.get(keyHash);
    if (!record) return undefined;
    const revoked = { ...record, revoked: true, revoked_at: Date.now() / 1000 };
    this.records.set(keyHash, revoked);
    return revoked;
  }

  async list(): Promise<KeyRecord[]> {
    return [...this.records.keys()].map((hash) => this.get(hash)).filter((r): r is KeyRecord => r !== undefined);
  }

  /** Adds usage; records are replaced, never changed, so a record handed out stays as it was. */
  async applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    for (const delta of deltas) {
      const record = this.records.get(delta.key_hash);
      if (!record) continue;
      const last = delta.days[delta.days.length - 1]!;
      const sameDay = record.requests_day === last.day;
      this.records.set(delta.key_hash, {
        ...record,
        usage_count: record.usage_count + delta.units,
        requests_day: last.day,
        requests_today: (sameDay ? record.requests_today : 0) + last.units,
        last_used: Math.max(record.last_used ?? 0, delta.last_used),
      });
    }
    batch?.onApplied();
  }

  async close(): Promise<void> {
    this.records.clear();
  }
}

async function main(): Promise<void> {
  const store = new TtlMapKeyStore(Number(process.env.KEY_TTL_SECONDS ?? 3600));
  const auth = daymindAuth({ store, billing: false });
  const app = express();
  app.use('/v1', auth, auth.usageRouter());
  app.get('/v1/hello', (req, res) => res.json({ owner: req.daymind!.owner }));
  const { key, record } = await store.create({ owner: 'trial' });
  const server = app.listen(Number(process.env.PORT ?? 3002), () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 3002;
    console.log(`custom-store example listening on http://localhost:${port}`);
    console.log(`trial key, valid until ${new Date(record.expires_at! * 1000).toISOString()}: ${key}`);
  });
  const stop = () => server.close(() => void auth.close().then(() => process.exit(0)));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) void main();
