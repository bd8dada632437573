import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { daymindAuth, resolveConfig, ConfigError, MemoryKeyStore } from '../src';
import { tempDir } from './helpers';

describe('configuration', () => {
  test('defaults: 120 per key, 240 per IP, data/api_keys.json, flush every second', () => {
    const config = resolveConfig({ env: {} });
    expect(config.rateLimitPerMinute).toBe(120);
    expect(config.ipRateLimitPerMinute).toBe(240);
    expect(config.storePath).toBe('data/api_keys.json');
    expect(config.flushIntervalMs).toBe(1000);
    expect(config.queryParam).toBe(false);
  });

  test('environment values are read', () => {
    const config = resolveConfig({
      env: { API_RATE_LIMIT_PER_MINUTE: '30', IP_RATE_LIMIT_PER_MINUTE: '90', API_KEY_STORE_PATH: '/tmp/x.json' },
    });
    expect(config.rateLimitPerMinute).toBe(30);
    expect(config.ipRateLimitPerMinute).toBe(90);
    expect(config.storePath).toBe('/tmp/x.json');
  });

  test('options win over the environment', () => {
    const config = resolveConfig({ env: { API_RATE_LIMIT_PER_MINUTE: '30' }, rateLimitPerMinute: 7 });
    expect(config.rateLimitPerMinute).toBe(7);
  });

  test.each([
    ['API_RATE_LIMIT_PER_MINUTE', 'abc'],
    ['API_RATE_LIMIT_PER_MINUTE', '-5'],
    ['API_RATE_LIMIT_PER_MINUTE', '0'],
    ['API_RATE_LIMIT_PER_MINUTE', '1.5'],
    ['IP_RATE_LIMIT_PER_MINUTE', 'abc'],
    ['IP_RATE_LIMIT_PER_MINUTE', '-5'],
    ['IP_RATE_LIMIT_PER_MINUTE', '0'],
    ['API_KEYS', ' , ,'],
    ['API_KEYS', 'short'],
    ['REDIS_URL', 'localhost:6379'],
    ['KEY_STORE', 'redis'],
    ['KEY_STORE', 'postgres'],
    ['REDIS_FAILURE_MODE', 'maybe'],
    ['REDIS_PREFIX', 'a b'],
    ['BILLING_MODE', 'paypal'],
  ])('%s=%j throws at construction naming the variable', (name, value) => {
    const dir = tempDir();
    let error: unknown;
    try {
      daymindAuth({ env: { [name]: value, API_KEY_STORE_PATH: name === 'API_KEYS' ? undefined : join(dir, 'k.json') } });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('ERR_DAYMIND_CONFIG');
    expect((error as ConfigError).variable).toBe(name);
    expect((error as Error).message).toContain(name);
  });

  test('bad options throw naming the option', () => {
    expect(() => resolveConfig({ env: {}, rateLimitPerMinute: 0 })).toThrow(/rateLimitPerMinute/);
    expect(() => resolveConfig({ env: {}, ipRateLimitPerMinute: -1 })).toThrow(/ipRateLimitPerMinute/);
    expect(() => resolveConfig({ env: {}, flushIntervalMs: 0 })).toThrow(/flushIntervalMs/);
    expect(() => resolveConfig({ env: {}, keyPrefix: 'x y' })).toThrow(/keyPrefix/);
    expect(() => resolveConfig({ env: {}, queryParam: 'a b' })).toThrow(/queryParam/);
  });

  test('usageJournal (deprecated): still checked at start-up, naming the option; no flush writes a journal any more', async () => {
    expect(() => resolveConfig({ env: {}, usageJournal: { foldAfterMs: -1 } })).toThrow(
      'usageJournal.foldAfterMs: must be a whole number of 0 or more, got -1',
    );
    expect(() => resolveConfig({ env: {}, usageJournal: { minStoreBytes: 'big' as never } })).toThrow(/usageJournal.minStoreBytes/);
    expect(() => resolveConfig({ env: {}, usageJournal: { every: 5 } as never })).toThrow(
      'usageJournal.every: is not an option of usageJournal',
    );
    expect(() => resolveConfig({ env: {}, usageJournal: true as never })).toThrow(/^usageJournal: must be false or/);
    expect(resolveConfig({ env: {}, usageJournal: false }).usageJournal).toBe(false);

    // A 1-key store under minStoreBytes 0, which earlier versions journaled: every flush rewrites the file.
    for (const usageJournal of [{ minStoreBytes: 0 }, false] as const) {
      const storePath = join(tempDir(), 'keys.json');
      const auth = daymindAuth({ env: {}, storePath, usageJournal, billing: false, history: false });
      const { key } = await auth.store.create({ owner: 'o' });
      await auth.verify(key);
      await auth.flush();
      expect(existsSync(`${storePath}.journal`)).toBe(false);
      expect(JSON.parse(readFileSync(storePath, 'utf8'))[0].usage_count).toBe(1);
      await auth.close();
      expect(existsSync(`${storePath}.journal`)).toBe(false);
    }
  });

  test('API_KEYS with API_KEY_STORE_PATH is refused as ambiguous', () => {
    expect(() => resolveConfig({ env: { API_KEYS: 'k'.repeat(20), API_KEY_STORE_PATH: '/tmp/a.json' } })).toThrow(/API_KEYS/);
  });

  test('ipRateLimitPerMinute: false (env: off) turns the per-IP limit off', () => {
    expect(resolveConfig({ env: { IP_RATE_LIMIT_PER_MINUTE: '5' }, ipRateLimitPerMinute: false }).ipRateLimitPerMinute).toBe(false);
    expect(resolveConfig({ env: { IP_RATE_LIMIT_PER_MINUTE: 'off' } }).ipRateLimitPerMinute).toBe(false);
  });

  test('key sources: options win over the environment; contradictions at one level are refused', () => {
    const keys = ['k'.repeat(20)];
    expect(resolveConfig({ env: { API_KEY_STORE_PATH: '/tmp/a.json' }, keys }).keys).toEqual(keys);
    expect(resolveConfig({ env: { API_KEYS: keys[0] }, storePath: '/tmp/b.json' })).toMatchObject({
      keys: undefined,
      storePath: '/tmp/b.json',
    });
    expect(() => resolveConfig({ env: {}, keys, storePath: '/tmp/b.json' })).toThrow(/^keys: cannot be combined with storePath/);
    const store = new MemoryKeyStore();
    expect(() => resolveConfig({ env: {}, store, keys })).toThrow(/^keys: cannot be combined with the store option/);
    expect(resolveConfig({ env: { API_KEYS: keys[0] }, store }).keys).toBeUndefined();
  });

  test('Redis settings: REDIS_URL switches the limiters; KEY_STORE=redis the store; failure mode and prefix', () => {
    const config = resolveConfig({
      env: { REDIS_URL: 'redis://127.0.0.1:6379', KEY_STORE: 'redis', REDIS_FAILURE_MODE: 'closed', REDIS_PREFIX: 'acme' },
    });
    expect(config).toMatchObject({ redis: 'redis://127.0.0.1:6379', keyStore: 'redis', redisFailureMode: 'closed', redisPrefix: 'acme' });
    expect(resolveConfig({ env: { REDIS_URL: 'rediss://cache:6380' } })).toMatchObject({
      keyStore: 'file',
      redisFailureMode: 'open',
      redisPrefix: 'daymind',
    });
    expect(() => resolveConfig({ env: { REDIS_URL: 'redis://x:1', KEY_STORE: 'redis', API_KEYS: 'k'.repeat(20) } })).toThrow(
      /^KEY_STORE: /,
    );
  });

  test('billing: local by default (off for keys in memory), stripe needs STRIPE_SECRET_KEY, the ledger beside the store', () => {
    expect(resolveConfig({ env: { API_KEY_STORE_PATH: '/srv/keys/api.json' } })).toMatchObject({
      billing: 'local',
      ledgerDir: '/srv/keys',
    });
    expect(resolveConfig({ env: { API_KEYS: 'k'.repeat(20) } }).billing).toBe(false);
    expect(resolveConfig({ env: { BILLING_MODE: 'off' } }).billing).toBe(false);
    expect(resolveConfig({ env: { DAYMIND_LEDGER_DIR: '/var/ledger' } }).ledgerDir).toBe('/var/ledger');
    expect(() => resolveConfig({ env: { BILLING_MODE: 'stripe' } })).toThrow(
      /^STRIPE_SECRET_KEY: is required when BILLING_MODE is "stripe"/,
    );
    expect(() =>
      resolveConfig({ env: { BILLING_MODE: 'stripe', STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_API_BASE: 'localhost:12111' } }),
    ).toThrow(/^STRIPE_API_BASE: /);
    expect(
      resolveConfig({ env: { BILLING_MODE: 'stripe', STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_API_BASE: 'http://localhost:12111' } }).stripe,
    ).toEqual({
      secretKey: 'sk_test_x',
      meterEventName: 'api_requests',
      apiBase: 'http://localhost:12111',
    });
    expect(() => resolveConfig({ env: {}, billing: 'paper' as never })).toThrow(/^billing: /);
  });

  test('a missing ioredis is an error naming the package and how to install it', () => {
    jest.isolateModules(() => {
      jest.doMock('ioredis', () => {
        throw new Error("Cannot find module 'ioredis'");
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { daymindAuth: isolated } = require('../src') as typeof import('../src');
      expect(() => isolated({ env: { REDIS_URL: 'redis://127.0.0.1:6379' } })).toThrow(
        /optional peer dependency "ioredis".*npm install ioredis/,
      );
      jest.dontMock('ioredis');
    });
  });
});
