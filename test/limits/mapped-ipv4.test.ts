/**
 * An IPv4-mapped IPv6 address counts as its IPv4 address on the per-IP limit in every spelling,
 * the hexadecimal one (`::ffff:a09:909`) included: a proxy may write the client address that
 * way in X-Forwarded-For.
 */
import request from 'supertest';
import { daymindAuth, MemoryKeyStore, type DaymindAuth } from '../../src';
import { ipLimitKey } from '../../src/limits/ip';
import { appWith, closeAll } from '../helpers';

const open: DaymindAuth[] = [];
afterEach(() => closeAll(open));

describe('IPv4-mapped IPv6 addresses', () => {
  test.each([
    ['::ffff:10.9.9.9', '10.9.9.9'],
    ['::ffff:a09:909', '10.9.9.9'],
    ['::FFFF:0A09:0909', '10.9.9.9'],
    ['0:0:0:0:0:ffff:a09:909', '10.9.9.9'],
    ['0000:0000:0000:0000:0000:ffff:cb00:7107', '203.0.113.7'],
    ['::ffff:0:0', '0.0.0.0'],
    ['::ffff:ffff:ffff', '255.255.255.255'],
    // Not mapped: an IPv4-translated address (::ffff:0:0:0/96) and NAT64 (64:ff9b::/96) are IPv6 networks.
    ['::ffff:0:a09:909', '0:0:0:0::/64'],
    ['64:ff9b::a09:909', '64:ff9b:0:0::/64'],
  ])('%s -> %s', (ip, key) => {
    expect(ipLimitKey(ip)).toBe(key);
  });

  test('with trust proxy, ::ffff:a09:909 in X-Forwarded-For shares the limit of 10.9.9.9', async () => {
    const auth = daymindAuth({ env: {}, store: new MemoryKeyStore(), billing: false, ipRateLimitPerMinute: 2, onError: () => undefined });
    open.push(auth);
    const app = appWith(auth);
    app.set('trust proxy', true);
    const from = (ip: string) => request(app).get('/v1/hello').set('X-Forwarded-For', ip);
    expect((await from('10.9.9.9')).status).toBe(401);
    expect((await from('::ffff:a09:909')).status).toBe(401);
    const third = await from('0:0:0:0:0:ffff:a09:909');
    expect([third.status, third.body.error.code, third.body.error.policy]).toEqual([429, 'rate_limited', 'ip']);
    expect((await from('10.9.9.10')).status).toBe(401);
  });
});
