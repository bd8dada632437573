import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { daymindAuth, JsonFileKeyStore, MemoryKeyStore, readLedger, type KeyStore } from '../src';
import { main } from '../src/cli/main';
import { appWith, tempDir } from './helpers';

// A clock years away from the real one, at the last second of a leap day: whatever stamps a time
// from the real clock instead of `now` shows at once.
const AT = Date.UTC(2032, 1, 29, 23, 59, 59);
const now = () => AT;

describe.each<[string, () => KeyStore]>([
  ['JsonFileKeyStore', () => new JsonFileKeyStore({ path: join(tempDir(), 'api_keys.json'), now })],
  ['MemoryKeyStore', () => new MemoryKeyStore({ now })],
])('%s stamps times from its now option', (_name, make) => {
  test('creation, a credits period, revocation and a rotation grace', async () => {
    const store = make();
    try {
      const { record } = await store.create({ owner: 'acme', credits_refill: { interval: 'monthly', amount: 10 } });
      expect(record.created_at).toBe(AT / 1000);
      expect(record.credits_period).toBe(203202);
      const updated = await store.update!(record.key_hash, { credits_refill: { interval: 'daily', amount: 5 } });
      expect(updated!.credits_period).toBe(20320229);
      const rotated = await store.rotate!(record.key_hash, 3600);
      expect(rotated!.previous.revoke_at).toBe(AT / 1000 + 3600);
      expect(rotated!.record.created_at).toBe(AT / 1000);
      expect((await store.revoke(rotated!.record.key_hash))!.revoked_at).toBe(AT / 1000);
    } finally {
      await store.close();
    }
  });
});

test('daymindAuth() hands its clock to the store, the counters, the billing windows and the ledger', async () => {
  const dir = tempDir();
  const auth = daymindAuth({ env: {}, storePath: join(dir, 'api_keys.json'), billing: 'local', ipRateLimitPerMinute: false, now });
  try {
    const { key, record } = await auth.store.create({ owner: 'acme', credits: 5, credits_refill: { interval: 'monthly', amount: 5 } });
    expect(record).toMatchObject({ created_at: AT / 1000, credits_period: 203202 });
    // A store stamped from the real clock would refill here (another month): 5 - 1 = 4 shows it did not.
    await request(appWith(auth)).get('/v1/hello').set('authorization', `Bearer ${key}`).expect(200);
    const res = await request(appWith(auth)).get('/v1/usage').set('authorization', `Bearer ${key}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ credits: 4, requests_today: 1, requests_this_month: 1, last_used: AT / 1000 });
    await auth.flush();
    expect(auth.store.get(record.key_hash)).toMatchObject({ requests_day: 20320229, requests_month: 203202, credits: 4 });
  } finally {
    await auth.close();
  }
  const [line] = await readLedger(dir, ['2032-02']);
  expect(line).toMatchObject({ time: AT / 1000, window_end: AT / 1000, quantity: 1 });
});

test('the CLI takes its clock from CliIO.now', async () => {
  const path = join(tempDir(), 'api_keys.json');
  const out: string[] = [];
  const io = { stdout: (t: string) => void out.push(t), stderr: () => undefined, env: {}, now };
  expect(await main(['create', 'acme', '--store', path, '--expires', '1d'], io)).toBe(0);
  const [raw] = JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, number>>;
  expect(raw).toMatchObject({ created_at: AT / 1000, expires_at: AT / 1000 + 86_400 });
  out.length = 0;
  const later = { ...io, now: () => AT + 86_400_000 };
  expect(await main(['list', '--store', path, '--json'], later)).toBe(0);
  expect(JSON.parse(out.join(''))).toMatchObject([{ owner: 'acme', status: 'expired' }]);
});
