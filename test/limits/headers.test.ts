import type { Request } from 'express';
import { rateLimitHeader, rateLimitPolicyHeader, setRateLimitHeaders } from '../../src/http/ratelimit-headers';
import { clientAddress, ipLimitKey } from '../../src/limits/ip';
import { MemoryRateLimiter } from '../../src/limits/memory';

describe('RateLimit header fields', () => {
  const results = [
    { policy: 'ip', allowed: true, limit: 240, remaining: 239, resetMs: 59_001, windowSeconds: 60 },
    { policy: 'key', allowed: true, limit: 120, remaining: 119, resetMs: 41_200, windowSeconds: 60 },
  ];

  test('one named item per policy, in Structured Fields list syntax', () => {
    expect(rateLimitPolicyHeader(results)).toBe('"ip";q=240;w=60, "key";q=120;w=60');
    expect(rateLimitHeader(results)).toBe('"ip";r=239;t=60, "key";r=119;t=42');
  });

  test('setRateLimitHeaders puts the IP result first, and sets nothing without results', () => {
    const set = new Map<string, string>();
    const sink = { setHeader: (name: string, value: string) => set.set(name, value) };
    setRateLimitHeaders(sink, undefined, []);
    expect(set.size).toBe(0);
    setRateLimitHeaders(sink, results[0], [results[1]!]);
    expect(set.get('RateLimit-Policy')).toBe('"ip";q=240;w=60, "key";q=120;w=60');
    expect(set.get('RateLimit')).toBe('"ip";r=239;t=60, "key";r=119;t=42');
    setRateLimitHeaders(sink, undefined, [results[1]!]);
    expect(set.get('RateLimit')).toBe('"key";r=119;t=42');
  });

  test('RateLimit-Policy follows every change of the policies, though it is reused while they stay the same', () => {
    const set = new Map<string, string>();
    const sink = { setHeader: (name: string, value: string) => set.set(name, value) };
    const policyOf = (first: (typeof results)[number] | undefined, rest: typeof results) => {
      setRateLimitHeaders(sink, first, rest);
      return set.get('RateLimit-Policy');
    };
    const [ip, key] = results as [(typeof results)[number], (typeof results)[number]];
    expect(policyOf(ip, [key])).toBe('"ip";q=240;w=60, "key";q=120;w=60');
    expect(policyOf(ip, [{ ...key, remaining: 3 }])).toBe('"ip";q=240;w=60, "key";q=120;w=60');
    expect(policyOf(undefined, [key])).toBe('"key";q=120;w=60');
    expect(policyOf(key, [])).toBe('"key";q=120;w=60');
    expect(policyOf(undefined, [{ ...key, limit: 50 }])).toBe('"key";q=50;w=60');
    expect(policyOf(undefined, [{ ...key, windowSeconds: 1 }])).toBe('"key";q=120;w=1');
    expect(policyOf(undefined, [{ ...key, policy: 'burst' }])).toBe('"burst";q=120;w=60');
    expect(policyOf(ip, [key, { ...key, policy: 'month' }])).toBe('"ip";q=240;w=60, "key";q=120;w=60, "month";q=120;w=60');
    expect(policyOf(ip, [key])).toBe('"ip";q=240;w=60, "key";q=120;w=60');
  });
});

describe('per-IP limit subject', () => {
  test.each([
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::99', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    [undefined, 'unknown'],
    ['not-an-address', 'not-an-address'],
  ])('%s -> %s', (ip, key) => {
    expect(ipLimitKey(ip)).toBe(key);
  });

  const req = (socketAddress: string | undefined, ip: string | undefined, headers: Record<string, string> = {}) =>
    ({ socket: { remoteAddress: socketAddress }, ip, headers }) as unknown as Request;
  test("without X-Forwarded-For it is the socket's address, which is what req.ip gives then", () => {
    expect(clientAddress(req('203.0.113.7', '203.0.113.7'))).toBe('203.0.113.7');
    expect(clientAddress(req('203.0.113.7', '203.0.113.7', { 'x-forwarded-for': '' }))).toBe('203.0.113.7');
    expect(clientAddress(req('203.0.113.7', undefined))).toBe('203.0.113.7');
  });
  test('with X-Forwarded-For it is req.ip (which applies trust proxy), else the socket address outside Express', () => {
    expect(clientAddress(req('10.0.0.1', '198.51.100.4', { 'x-forwarded-for': '198.51.100.4' }))).toBe('198.51.100.4');
    expect(clientAddress(req('10.0.0.1', undefined, { 'x-forwarded-for': '198.51.100.4' }))).toBe('10.0.0.1');
  });
});

describe('memory rate limiter adapter', () => {
  test('allows up to the limit per window, then refuses with the time to reset', async () => {
    const limiter = new MemoryRateLimiter();
    const window = { name: 'key', limit: 3, windowSeconds: 60 };
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await limiter.consume(window, 'a', 1));
    expect(seen.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(seen.map((r) => r.remaining)).toEqual([2, 1, 0, 0]);
    expect(seen[3]!.resetMs).toBeGreaterThan(58_000);
    expect((await limiter.consume(window, 'b', 1)).allowed).toBe(true);
    expect((await limiter.peek(window, 'b')).remaining).toBe(2);
  });

  test('refund gives back to the window that took, and nothing to a window begun since', async () => {
    const limiter = new MemoryRateLimiter();
    const window = { name: 'second', limit: 3, windowSeconds: 1 };
    await limiter.consume(window, 'a', 2);
    await limiter.refund(window, 'a', 1);
    expect((await limiter.peek(window, 'a')).remaining).toBe(2);
    await new Promise((r) => setTimeout(r, 1100)); // that window has ended
    await limiter.refund(window, 'a', 1);
    expect((await limiter.consume(window, 'a', 1)).remaining).toBe(2); // a new window: 3, less this one
  });

  test('windows with different limits are counted separately', async () => {
    const limiter = new MemoryRateLimiter();
    await limiter.consume({ name: 'key', limit: 1, windowSeconds: 60 }, 'a', 1);
    expect((await limiter.consume({ name: 'key', limit: 1, windowSeconds: 60 }, 'a', 1)).allowed).toBe(false);
    expect((await limiter.consume({ name: 'key', limit: 5, windowSeconds: 60 }, 'a', 1)).allowed).toBe(true);
    expect((await limiter.consume({ name: 'key', limit: 5, windowSeconds: 60 }, 'a', 3)).remaining).toBe(1);
  });

  test('each window and subject has its own counter, however many other subjects there are', async () => {
    const limiter = new MemoryRateLimiter();
    const window = { name: 'key', limit: 3, windowSeconds: 60 };
    const other = { name: 'ip', limit: 3, windowSeconds: 60 };
    expect((await limiter.consume(window, 'a', 1)).remaining).toBe(2);
    expect((await limiter.consume(window, 'a', 1)).remaining).toBe(1);
    expect((await limiter.consume(other, 'a', 1)).remaining).toBe(2); // another window: its own counter
    for (let i = 0; i < 10_050; i++) await limiter.consume(window, `subject-${i}`, 1);
    expect((await limiter.consume(window, 'a', 1)).remaining).toBe(0);
    expect((await limiter.consume(window, 'a', 1)).allowed).toBe(false);
    expect((await limiter.peek(window, 'subject-0')).remaining).toBe(2);
  });
});
