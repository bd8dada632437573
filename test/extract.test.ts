import type { Request } from 'express';
import { extractKey } from '../src/http/extract-key';

const keyOf = (headers: Record<string, string>, query?: Record<string, string>, queryParam: string | false = false) =>
  extractKey({ headers, query } as unknown as Request, queryParam);

describe('extractKey', () => {
  test.each([
    ['Bearer dm_abc', 'dm_abc'],
    ['bearer dm_abc', 'dm_abc'],
    ['BEARER dm_abc', 'dm_abc'],
    ['Bearer   dm_abc', 'dm_abc'],
    ['Bearer\tdm_abc', 'dm_abc'],
    ['Bearer dm_abc  ', 'dm_abc'],
    ['Bearer dm_abc\t', 'dm_abc'],
  ])('Authorization %j gives %j', (authorization, key) => {
    expect(keyOf({ authorization })).toBe(key);
  });

  test.each([
    ['Bearer dm_a dm_b'],
    ['Bearer '],
    ['Bearer'],
    ['Bearerdm_abc'],
    ['Basic dXNlcjpwYXNz'],
    ['Bearer dm_abc\nx'],
    [' Bearer dm_abc'],
  ])('Authorization %j carries no key, so X-API-Key is used', (authorization) => {
    expect(keyOf({ authorization })).toBeUndefined();
    expect(keyOf({ authorization, 'x-api-key': ' dm_xyz ' })).toBe('dm_xyz');
  });

  test('the query parameter only when enabled, and headers first', () => {
    expect(keyOf({}, { api_key: 'dm_q' })).toBeUndefined();
    expect(keyOf({}, { api_key: 'dm_q' }, 'api_key')).toBe('dm_q');
    expect(keyOf({ authorization: 'Bearer dm_h' }, { api_key: 'dm_q' }, 'api_key')).toBe('dm_h');
  });
});
