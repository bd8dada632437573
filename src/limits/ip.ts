import { isIPv4, isIPv6 } from 'node:net';
import type { Request } from 'express';

/**
 * The client address as Express's `req.ip` gives it. Without an X-Forwarded-For header `req.ip`
 * is the socket's address whatever `trust proxy` says, so that is read directly (`req.ip` runs
 * proxy-addr on every call). Outside Express (no `req.ip`) it is the socket's address.
 */
export function clientAddress(req: Request): string | undefined {
  if (!req.headers['x-forwarded-for']) return req.socket?.remoteAddress ?? req.ip;
  return req.ip ?? req.socket?.remoteAddress;
}

/**
 * The subject of the per-IP limit: the IPv4 address, or the /64 network of an IPv6 address (one
 * host usually owns a whole /64, so per-address limits would be trivial to evade). IPv4-mapped
 * IPv6 addresses (::ffff:0:0/96) count as their IPv4 address, in any spelling: `::ffff:10.9.9.9`,
 * `::ffff:a09:909` (as a proxy may write it in X-Forwarded-For), `0:0:0:0:0:ffff:a09:909`.
 */
export function ipLimitKey(ip: string | undefined): string {
  if (!ip) return 'unknown';
  if (ip.indexOf(':') === -1) return ip; // IPv4, or anything else without a colon: itself, as below
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip); // the usual spelling, without expanding it
  if (mapped) return mapped[1]!;
  if (isIPv4(ip)) return ip;
  const zoneless = ip.split('%')[0]!;
  if (!isIPv6(zoneless)) return ip;
  const groups = expandIPv6(zoneless);
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const [high, low] = [parseInt(groups[6]!, 16), parseInt(groups[7]!, 16)];
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return groups.slice(0, 4).join(':') + '::/64';
}

/** The eight 16-bit groups of an IPv6 address, without leading zeros. */
function expandIPv6(ip: string): string[] {
  let text = ip;
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, tail.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = rest ? rest.split(':') : [];
  const fill = rest === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16).toString(16));
}
