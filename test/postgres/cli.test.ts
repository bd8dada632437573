import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { daymindAuth, hashKey, type KeyRecord } from '../../src';
import { appWith, SEED_KEYS, seedStoreCopy, tempDir } from '../helpers';
import { startRedis, type TestRedis } from '../redis/harness';
import { cli } from '../cli/run';
import { databaseForFile } from './harness';

let redis: TestRedis | undefined;
const file = databaseForFile(async () => {
  await redis?.close();
});

/** Every record of a store as the CLI lists it, by owner, without what differs between stores. */
async function listed(args: string[], env: Record<string, string> = {}): Promise<Record<string, Partial<KeyRecord>>> {
  const run = await cli(['--json', ...args, 'list'], env);
  expect(run.stderr).toBe('');
  const records = JSON.parse(run.stdout) as Array<Record<string, unknown>>;
  return Object.fromEntries(
    records.map((r) => [
      r.owner,
      { usage_count: r.usage_count, requests_today: r.requests_today, status: r.status, credits: r.credits } as Partial<KeyRecord>,
    ]),
  );
}

describe('daymind-keys on a PostgreSQL store', () => {
  test('create, list, show, set, credits, rotate and revoke with --database, or KEY_STORE=postgres from an env file', async () => {
    const db = ['--database', file.db.url];
    const env = { DATABASE_SCHEMA: 'cli1' };
    const key = (await cli([...db, 'create', 'acme', '--rate-limit', '5', '--credits', '10'], env)).stdout.trim();
    expect(key).toMatch(/^dm_/);
    const row = await file.db.pool.query('SELECT owner, rate_limit_per_minute, credits FROM cli1.keys WHERE key_hash = $1', [hashKey(key)]);
    expect(row.rows).toEqual([{ owner: 'acme', rate_limit_per_minute: 5, credits: '10' }]);
    const envFile = join(tempDir(), 'daymind.env');
    writeFileSync(envFile, `KEY_STORE=postgres\nDATABASE_URL=${file.db.url}\nDATABASE_SCHEMA=cli1\n`);
    const list = JSON.parse((await cli(['--env-file', envFile, '--json', 'list'])).stdout);
    expect(list).toEqual([expect.objectContaining({ owner: 'acme', status: 'active', rate_limit_per_minute: 5, credits: 10 })]);
    expect((await cli(['--env-file', envFile, 'set', key, '--owner', 'acme-eu'])).code).toBe(0);
    expect((await cli(['--env-file', envFile, 'credits', key, '--add', '-4'])).code).toBe(0);
    const rotated = JSON.parse((await cli([...db, '--json', 'rotate', key.slice(0, 9)], env)).stdout);
    expect(rotated.previous.status).toBe('revoked');
    expect((await cli([...db, 'revoke', rotated.key], env)).stdout).toMatch(/^Revoked /);
    const shown = JSON.parse((await cli([...db, '--json', 'show', rotated.key], env)).stdout);
    expect(shown).toMatchObject({ status: 'revoked', owner: 'acme-eu', credits: 6, rotated_from: hashKey(key) });
  });

  test('migrate: the existing-format sample into PostgreSQL and back to a new JSON file, counters included, twice counting nothing twice', async () => {
    const source = seedStoreCopy();
    const env = { DATABASE_SCHEMA: 'mig' };
    const first = await cli(['--json', 'migrate', '--from', source, '--to', file.db.url], env);
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout)).toMatchObject({ copied: 3, skipped: 0, schema: 'mig' });
    const second = await cli(['migrate', '--from', source, '--to', file.db.url], env);
    expect(second.stdout).toMatch(/^Copied 0 key\(s\) from .* \(schema mig\); 3 were in PostgreSQL already and were left as they are\.\n$/);
    const rows = await file.db.pool.query('SELECT owner, usage_count, revoked FROM mig.keys ORDER BY owner');
    expect(rows.rows).toEqual([
      { owner: 'old-integration', usage_count: '98765', revoked: true },
      { owner: 'team-alpha', usage_count: '1245', revoked: false },
      { owner: 'team-beta', usage_count: '0', revoked: false },
    ]);
    expect(JSON.stringify(rows.rows)).not.toContain(SEED_KEYS.alpha);
    // Plain keys of the old file keep working on PostgreSQL; the server says nothing of the migration.
    const auth = daymindAuth({ env: {}, keyStore: 'postgres', databaseUrl: file.db.url, databaseSchema: 'mig', billing: false });
    try {
      const app = appWith(auth);
      expect((await request(app).get('/v1/hello').set('X-API-Key', SEED_KEYS.alpha)).status).toBe(200);
      expect((await request(app).get('/v1/hello').set('X-API-Key', SEED_KEYS.revoked)).body.error.code).toBe('revoked_api_key');
      const { key } = await auth.store.create({ owner: 'new-on-pg' });
      expect((await request(app).get('/v1/hello').set('X-API-Key', key)).status).toBe(200);
    } finally {
      await auth.close();
    }
    const before = await listed(['--database', file.db.url], env);
    expect(before['team-alpha']!.usage_count).toBe(1246);
    // And back, to a new file (never over an existing one).
    const back = join(tempDir(), 'back.json');
    const out = await cli(['migrate', '--from', file.db.url, '--to', back], env);
    expect(out.stdout).toMatch(/^Copied 4 key\(s\) from postgres:\/\/.* \(schema mig\) to the new JSON store .*back\.json\.\n$/);
    expect(await listed(['--store', back])).toEqual(before);
    const again = await cli(['migrate', '--from', file.db.url, '--to', back], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`daymind-keys: ${back} exists already: migrate to a new file\n`);
    expect(readFileSync(source, 'utf8')).not.toContain('new-on-pg');
    expect(existsSync(`${source}.migrated`)).toBe(true);
  });

  test('migrate: PostgreSQL to Redis and Redis to PostgreSQL, counters included', async () => {
    redis = await startRedis();
    const env = { DATABASE_SCHEMA: 'from_pg', REDIS_PREFIX: 'pg2r' };
    const key = (await cli(['--database', file.db.url, 'create', 'roundtrip', '--credits', '7'], env)).stdout.trim();
    const auth = daymindAuth({ env: {}, keyStore: 'postgres', databaseUrl: file.db.url, databaseSchema: 'from_pg', billing: false });
    try {
      for (let i = 0; i < 3; i++) expect((await request(appWith(auth)).get('/v1/hello').set('X-API-Key', key)).status).toBe(200);
    } finally {
      await auth.close();
    }
    const before = await listed(['--database', file.db.url], env);
    expect(before.roundtrip).toEqual({ usage_count: 3, requests_today: 3, status: 'active', credits: 4 });
    expect((await cli(['migrate', '--from', file.db.url, '--to', redis.url], env)).code).toBe(0);
    expect(await listed(['--redis', redis.url], env)).toEqual(before);
    const back = { ...env, DATABASE_SCHEMA: 'from_redis' };
    expect((await cli(['migrate', '--from', redis.url, '--to', file.db.url], back)).stdout).toMatch(/^Copied 1 key\(s\)/);
    expect(await listed(['--database', file.db.url], back)).toEqual(before);
  });

  test('bad input: an unreachable database or a bad URL is one line and a non-zero exit', async () => {
    const dead = await cli(['--database', 'postgres://postgres@127.0.0.1:1/x', 'list']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(
      /^daymind-keys: cannot use the PostgreSQL store at postgres:\/\/postgres@127\.0\.0\.1:1\/x \(schema daymind\): /,
    );
    expect(dead.stderr.trim().split('\n')).toHaveLength(1);
    const bad = await cli(['--database', 'localhost:5432', 'list']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--database: "localhost:5432" is not a postgres:\/\/ or postgresql:\/\/ URL/);
    const both = await cli(['--database', file.db.url, '--store', 'x.json', 'list']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--store and --database name two different stores; give one/);
    const noUrl = await cli(['list'], { KEY_STORE: 'postgres' });
    expect(noUrl.stderr).toMatch(/KEY_STORE is "postgres" but DATABASE_URL is not set/);
    const secret = await cli(['--database', 'postgres://u:hunter2@127.0.0.1:1/x', 'list']);
    expect(secret.stderr).toContain('postgres://u:***@127.0.0.1:1/x');
    expect(secret.stderr).not.toContain('hunter2');
  });
});
