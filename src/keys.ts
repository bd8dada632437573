import { createHash, randomBytes } from 'node:crypto';

/**
 * Key format: `<prefix><body><checksum>`.
 * - body: 16 bytes (128 bits) from crypto.randomBytes, base62, fixed width 22 characters;
 * - checksum: CRC32 of the body, base62, fixed width 6 characters (as GitHub tokens do), so that a
 *   mistyped or truncated key is refused without a store look-up and scanners can spot leaked keys.
 */
export const DEFAULT_KEY_PREFIX = 'dm_';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_BYTES = 16;
const BODY_LENGTH = 22;
const CHECKSUM_LENGTH = 6;
const DISPLAY_BODY_LENGTH = 6;
const PREFIX_PATTERN = /^[A-Za-z][A-Za-z0-9]{0,15}_$/;
const BASE62_PATTERN = /^[0-9A-Za-z]+$/;
/** Longest key the middleware will hash; anything longer is refused as malformed. */
export const MAX_KEY_LENGTH = 256;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function toBase62(value: bigint, width: number): string {
  let out = '';
  while (value > 0n) {
    out = BASE62[Number(value % 62n)] + out;
    value /= 62n;
  }
  return out.padStart(width, '0');
}

/** CRC32 in base62, 6 characters; plain number arithmetic (it is on every request's path). */
function checksumOf(body: string): string {
  let value = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

/** Throws a TypeError unless `prefix` is a valid key prefix (a letter, up to 15 letters/digits, `_`). */
export function assertKeyPrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(
      `key prefix must be a letter followed by up to 15 letters or digits and end in "_" (e.g. "dm_"), got ${JSON.stringify(prefix)}`,
    );
  }
}

/** A new random API key: `dm_` + 22 base62 characters (128 bits) + a 6-character checksum. */
export function generateKey(prefix: string = DEFAULT_KEY_PREFIX): string {
  assertKeyPrefix(prefix);
  const body = toBase62(BigInt('0x' + randomBytes(BODY_BYTES).toString('hex')), BODY_LENGTH);
  return prefix + body + checksumOf(body);
}

/** True when `key` has the generated shape for `prefix` and its checksum matches. */
export function hasValidChecksum(key: string, prefix: string = DEFAULT_KEY_PREFIX): boolean {
  if (key.length !== prefix.length + BODY_LENGTH + CHECKSUM_LENGTH || !key.startsWith(prefix)) return false;
  const rest = key.slice(prefix.length);
  if (!BASE62_PATTERN.test(rest)) return false;
  return checksumOf(rest.slice(0, BODY_LENGTH)) === rest.slice(BODY_LENGTH);
}

/** SHA-256 of the key, hex. Keys are stored and looked up only by this hash. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * The short, non-secret part of a key shown in listings and logs: the prefix and the first 6
 * characters (`dm_8fJq2L`). Keys without the prefix show at most a third of their length.
 */
export function displayPrefix(key: string, prefix: string = DEFAULT_KEY_PREFIX): string {
  if (key.startsWith(prefix) && key.length >= prefix.length + DISPLAY_BODY_LENGTH * 3) {
    return key.slice(0, prefix.length + DISPLAY_BODY_LENGTH);
  }
  return key.slice(0, Math.min(DISPLAY_BODY_LENGTH, Math.floor(key.length / 3)));
}

/** True for strings that may be looked up as a key at all: printable ASCII, no spaces, not too long. */
export function isPlausibleKey(key: string): boolean {
  return key.length > 0 && key.length <= MAX_KEY_LENGTH && /^[\x21-\x7e]+$/.test(key);
}
