import { rateLimitHeader, rateLimitPolicyHeader } from '../../src/ratelimit/headers';
import { ipLimitKey } from '../../src/ratelimit/ip';
import { MemoryRateLimiter } from '../../src/ratelimit/memory';

describe('RateLimit header fields', () => {
  const results = [
    { policy: 'ip', allowed: true, limit: 240, remaining: 239, resetMs: 59_001, windowSeconds: 60 },
    { policy: 'key', allowed: true, limit: 120, remaining: 119, resetMs: 41_200, windowSeconds: 60 },
  ];

  test('one named item per policy, in Structured Fields list syntax', () => {
    expect(rateLimitPolicyHeader(results)).toBe('"ip";q=240;w=60, "key";q=120;w=60');
    expect(rateLimitHeader(results)).toBe('"ip";r=239;t=60, "key";r=119;t=42');
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
  ])('%s -> %s', (ip, key) => {
    expect(ipLimitKey(ip)).toBe(key);
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

  test('windows with different limits are counted separately', async () => {
    const limiter = new MemoryRateLimiter();
    await limiter.consume({ name: 'key', limit: 1, windowSeconds: 60 }, 'a', 1);
    expect((await limiter.consume({ name: 'key', limit: 1, windowSeconds: 60 }, 'a', 1)).allowed).toBe(false);
    expect((await limiter.consume({ name: 'key', limit: 5, windowSeconds: 60 }, 'a', 1)).allowed).toBe(true);
    expect((await limiter.consume({ name: 'key', limit: 5, windowSeconds: 60 }, 'a', 3)).remaining).toBe(1);
  });
});
