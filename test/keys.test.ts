import { generateKey, hasValidChecksum, hashKey, displayPrefix, isPlausibleKey } from '../src/keys';

describe('key format', () => {
  test('new keys are dm_ + 22 base62 characters + a 6-character checksum, all different', () => {
    const keys = new Set(Array.from({ length: 2000 }, () => generateKey()));
    expect(keys.size).toBe(2000);
    for (const key of keys) {
      expect(key).toMatch(/^dm_[0-9A-Za-z]{28}$/);
      expect(hasValidChecksum(key)).toBe(true);
    }
  });

  test('the body carries at least 128 bits: every base62 digit position varies', () => {
    const keys = Array.from({ length: 3000 }, () => generateKey());
    // 22 digits of base62 hold 130.9 bits; the top digit is limited by 2^128, the others are uniform.
    for (let pos = 4; pos < 3 + 22; pos++) {
      expect(new Set(keys.map((k) => k[pos])).size).toBeGreaterThan(50);
    }
  });

  test('a mistyped, truncated or extended key fails the checksum', () => {
    const key = generateKey();
    const flipped = key.slice(0, 10) + (key[10] === 'a' ? 'b' : 'a') + key.slice(11);
    expect(hasValidChecksum(flipped)).toBe(false);
    expect(hasValidChecksum(key.slice(0, -1))).toBe(false);
    expect(hasValidChecksum(key + 'x')).toBe(false);
    const swapped = key.slice(0, 5) + key[6] + key[5] + key.slice(7);
    if (swapped !== key) expect(hasValidChecksum(swapped)).toBe(false);
  });

  test('the prefix is configurable and checked', () => {
    const key = generateKey('acme_');
    expect(key).toMatch(/^acme_[0-9A-Za-z]{28}$/);
    expect(hasValidChecksum(key, 'acme_')).toBe(true);
    expect(hasValidChecksum(key, 'dm_')).toBe(false);
    expect(() => generateKey('bad prefix')).toThrow(/prefix/);
    expect(() => generateKey('nounderscore')).toThrow(/prefix/);
  });

  test('keys are hashed with SHA-256 and displayed by a short prefix', () => {
    expect(hashKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(displayPrefix('dm_8fJq2LrXc0VnT4sYwPzA7kHd')).toBe('dm_8fJq2L');
    expect(displayPrefix('shortsecretvalue12')).toBe('shorts');
  });

  test('implausible keys are recognised before any hashing', () => {
    expect(isPlausibleKey('dm_abc')).toBe(true);
    expect(isPlausibleKey('')).toBe(false);
    expect(isPlausibleKey('has space')).toBe(false);
    expect(isPlausibleKey('x'.repeat(257))).toBe(false);
    expect(isPlausibleKey('caf\u00e9')).toBe(false);
  });
});
