import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';
import request from 'supertest';
import { daymindAuth, hashKey } from '../../src';
import { appWith, SEED_KEYS, SEED_STORE, seedStoreCopy, tempDir } from '../helpers';
import { redisForFile } from './harness';
import { cli } from '../cli/run';

const testRedis = redisForFile();

describe('daymind-keys on a Redis store', () => {
  test('create, list, show, rotate and revoke with --redis, or KEY_STORE=redis from an env file', async () => {
    const env = { REDIS_PREFIX: 'cli1' };
    const key = (await cli(['--redis', testRedis.server.url, 'create', 'acme', '--rate-limit', '5'], env)).stdout.trim();
    expect(key).toMatch(/^dm_/);
    expect(await testRedis.admin.hget(`{cli1}:key:${hashKey(key)}`, 'owner')).toBe('acme');
    const envFile = join(tempDir(), 'daymind.env');
    writeFileSync(envFile, `KEY_STORE=redis\nREDIS_URL=${testRedis.server.url}\nREDIS_PREFIX=cli1\n`);
    const list = JSON.parse((await cli(['--env-file', envFile, '--json', 'list'])).stdout);
    expect(list).toEqual([expect.objectContaining({ owner: 'acme', status: 'active', rate_limit_per_minute: 5 })]);
    const rotated = JSON.parse((await cli(['--redis', testRedis.server.url, '--json', 'rotate', key.slice(0, 9)], env)).stdout);
    expect(rotated.previous.status).toBe('revoked');
    expect((await cli(['--redis', testRedis.server.url, 'revoke', rotated.key], env)).stdout).toMatch(/^Revoked /);
    const shown = JSON.parse((await cli(['--redis', testRedis.server.url, '--json', 'show', rotated.key], env)).stdout);
    expect(shown).toMatchObject({ status: 'revoked', rotated_from: hashKey(key) });
  });

  test('report on a Redis store: rate-limited figures come from the Redis history', async () => {
    const env = { REDIS_PREFIX: 'rep' };
    const key = (await cli(['--redis', testRedis.server.url, 'create', 'limited-co', '--rate-limit', '2'], env)).stdout.trim();
    const auth = daymindAuth({ env: {}, redis: testRedis.server.url, keyStore: 'redis', redisPrefix: 'rep', billing: false });
    try {
      await auth.ready;
      const app = appWith(auth);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await request(app).get('/v1/hello').set('X-API-Key', key)).status);
      expect(statuses).toEqual([200, 200, 429, 429, 429]);
    } finally {
      await auth.close();
    }
    const ledgerDir = tempDir(); // billing is off: an empty ledger, so units are 0 and only the history counts
    const report = JSON.parse((await cli(['--redis', testRedis.server.url, 'report', '--json', '--ledger-dir', ledgerDir], env)).stdout);
    expect(report.owners).toEqual([expect.objectContaining({ owner: 'limited-co', rate_limited: 3 })]);
  });

  test('migrate copies the existing-format sample with its counters, and a second run changes nothing', async () => {
    const file = seedStoreCopy();
    const env = { REDIS_PREFIX: 'mig' };
    const first = await cli(['--json', 'migrate', '--from', file, '--to', testRedis.server.url], env);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ copied: 3, skipped: 0 });
    const client = new Redis(testRedis.server.url);
    const auth = daymindAuth({ env: {}, redis: client, keyStore: 'redis', redisPrefix: 'mig', billing: false });
    try {
      const app = appWith(auth);
      expect((await request(app).get('/v1/hello').set('X-API-Key', SEED_KEYS.alpha)).status).toBe(200);
      expect((await request(app).get('/v1/hello').set('X-API-Key', SEED_KEYS.revoked)).body.error.code).toBe('revoked_api_key');
      expect((await request(app).get('/v1/hello').set('X-API-Key', 'dm_unknownLegacyKey0000000')).body.error.code).toBe('invalid_api_key');
    } finally {
      await auth.close();
      await client.quit();
    }
    const second = await cli(['migrate', '--from', file, '--to', testRedis.server.url], env);
    expect(second.stdout).toMatch(/Copied 0 key\(s\).*3 were in Redis already/);
    const alpha = await testRedis.admin.hgetall(`{mig}:key:${hashKey(SEED_KEYS.alpha)}`);
    expect(alpha).toMatchObject({
      owner: 'team-alpha',
      usage_count: '1246',
      requests_day: expect.stringMatching(/^20\d{6}$/),
      revoked: '0',
    });
    expect(JSON.stringify(alpha)).not.toContain(SEED_KEYS.alpha);
    expect(await testRedis.admin.hgetall(`{mig}:key:${hashKey(SEED_KEYS.revoked)}`)).toMatchObject({ usage_count: '98765', revoked: '1' });
    // The old file stays as it was, with a note beside it: the CLI pointed at it says where its keys went.
    expect(readFileSync(file, 'utf8')).toBe(readFileSync(SEED_STORE, 'utf8'));
    const listed = await cli(['--store', file, 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stderr).toMatch(
      new RegExp(`^daymind-keys: note: the key store ${file} was migrated to redis://127\\.0\\.0\\.1:\\d+ \\(prefix mig\\) on 20\\d\\d-`),
    );
    // A server pointed at the old file says so too, once, at start-up.
    const errors: Error[] = [];
    const old = daymindAuth({ env: {}, storePath: file, billing: false, onError: (e) => errors.push(e) });
    await old.close();
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/was migrated to redis:.*this server still uses the file \(set KEY_STORE=redis and REDIS_URL/),
    ]);
  });

  test('bad input: an unreachable Redis or a bad URL is one line and a non-zero exit', async () => {
    const dead = await cli(['--redis', 'redis://127.0.0.1:1', 'list']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/^daymind-keys: cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    expect(dead.stderr.trim().split('\n')).toHaveLength(1);
    const bad = await cli(['--redis', 'localhost:6379', 'list']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a redis:\/\/ or rediss:\/\/ URL/);
    const both = await cli(['--redis', testRedis.server.url, '--store', 'x.json', 'list']);
    expect(both.code).toBe(2);
    const noTo = await cli(['migrate', '--from', 'x.json']);
    expect(noTo.code).toBe(2);
    expect(noTo.stderr).toMatch(/migrate needs --from FILE and --to/);
  });
});
