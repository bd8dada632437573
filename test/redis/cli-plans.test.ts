import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashKey } from '../../src';
import { tempDir } from '../helpers';
import { cli } from '../cli/run';
import { redisForFile } from './harness';

const testRedis = redisForFile();

describe('daymind-keys plans, scopes and credits on a Redis store', () => {
  test('create --plan --scopes --credits, then credits --set and --add, and set --plan none', async () => {
    const plansFile = join(tempDir(), 'plans.json');
    writeFileSync(plansFile, JSON.stringify({ pro: { limits: [{ name: 'minute', limit: 600, window: '1m' }], monthly_quota: 5000 } }));
    const env = { REDIS_PREFIX: 'cliplans', DAYMIND_PLANS_FILE: plansFile };
    const redis = ['--redis', testRedis.server.url];
    const created = await cli([...redis, '--json', 'create', 'acme', '--plan', 'pro', '--scopes', 'read,write', '--credits', '100'], env);
    expect(created.code).toBe(0);
    const record = JSON.parse(created.stdout);
    expect(record).toMatchObject({ plan: 'pro', scopes: ['read', 'write'], credits: 100, monthly_quota: 5000, requests_this_month: 0 });
    expect(record.key_hash).toBe(hashKey(record.key));

    expect((await cli([...redis, 'credits', record.key_prefix, '--set', '40'], env)).stdout).toMatch(/\(acme\): 40\n$/);
    // --add on a key that is not prepaid yet makes it prepaid.
    const other = JSON.parse((await cli([...redis, '--json', 'create', 'beta'], env)).stdout);
    expect((await cli([...redis, 'credits', other.key_prefix, '--add', '25'], env)).stdout).toMatch(/\(beta\): 25\n$/);
    const unknown = await cli([...redis, 'set', record.key_prefix, '--plan', 'gold'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/"gold" is not a plan in force \(pro\)/);
    const removed = JSON.parse((await cli([...redis, '--json', 'set', record.key_prefix, '--plan', 'none'], env)).stdout);
    expect(removed).toMatchObject({ plan: null, scopes: ['read', 'write'], credits: 40, monthly_quota: null });
    const shown = JSON.parse((await cli([...redis, '--json', 'show', record.key_prefix], env)).stdout);
    expect(shown).toEqual(removed);
  });

  test('credits --add on a prepaid key, and a negative add stops at 0', async () => {
    const env = { REDIS_PREFIX: 'cliplans2' };
    const redis = ['--redis', testRedis.server.url];
    const record = JSON.parse((await cli([...redis, '--json', 'create', 'acme', '--credits', '100'], env)).stdout);
    expect((await cli([...redis, 'credits', record.key_prefix, '--add', '25'], env)).stdout).toMatch(/\(acme\): 125\n$/);
    expect((await cli([...redis, 'credits', record.key_prefix, '--add', '-1000'], env)).stdout).toMatch(/\(acme\): 0\n$/);
  });
});
