import { IncomingMessage } from 'node:http';
import type { RateLimitResult } from './ratelimit/types';
import type { KeyRecord } from './store/types';

/** What the middleware tells the handler about an authenticated request, as `req.daymind`. */
export interface DaymindRequestInfo {
  /** Display prefix of the key, e.g. `dm_8fJq2L` (never the full key). */
  keyPrefix: string;
  /** SHA-256 of the key, hex: a stable id to attach to your own records. */
  keyHash: string;
  owner: string;
  meta: Record<string, unknown>;
  /** The key's rate-limit windows after this request (its plan's, or the `"key"` policy), and `"month"` with a quota. */
  limits: RateLimitResult[];
  /** Units this request cost. */
  cost: number;
  /** The stored record as it was before this request's usage was counted. */
  record: KeyRecord;
  /** The key's plan, or null. */
  plan: string | null;
  /** The monthly quota after this request, or null without one. */
  quota: { limit: number; remaining: number; reset_seconds: number } | null;
  /** Prepaid credits left after this request, or null when the key is not prepaid. */
  credits: number | null;
  /** The key's scopes. */
  scopes: string[];
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by daymindAuth() on requests it let through. */
      daymind?: DaymindRequestInfo;
    }
  }
}

/** `req.daymind` of requests whose prototype carries this module's accessor. */
const infos = new WeakMap<object, DaymindRequestInfo>();
/** For each request prototype seen: whether `req.daymind` goes through this module's accessor. */
const viaAccessor = new WeakMap<object, boolean>();

function getInfo(this: object): DaymindRequestInfo | undefined {
  return infos.get(this);
}

function setInfo(this: object, info: DaymindRequestInfo | undefined): void {
  if (info === undefined) infos.delete(this);
  else infos.set(this, info);
}

/**
 * Sets `req.daymind`. Express gives every request its own hidden class (it swaps the prototype
 * of each one), so adding a property to a request builds a new hidden class for it: about 1.7 KB
 * of garbage a request, and every later property look-up on it misses V8's caches. Instead, on
 * Express requests `daymind` is an accessor on Express's request prototype (the object just above
 * `http.IncomingMessage.prototype`, which Express documents as the place to extend requests),
 * backed by a WeakMap; anywhere else (a plain Node request, another accessor already there) it
 * is a plain assignment, as before.
 */
export function setRequestInfo(req: object, info: DaymindRequestInfo): void {
  const proto = Object.getPrototypeOf(req) as object | null;
  let via = proto === null ? false : viaAccessor.get(proto);
  if (via === undefined) {
    via = installAccessor(proto!);
    viaAccessor.set(proto!, via);
  }
  if (via) infos.set(req, info);
  else (req as { daymind?: DaymindRequestInfo }).daymind = info;
}

/** Puts the accessor on the Express request prototype above `proto`; whether reads of `daymind` reach it. */
function installAccessor(proto: object): boolean {
  let p: object | null = proto;
  while (p !== null && p !== IncomingMessage.prototype) {
    const own = Object.getOwnPropertyDescriptor(p, 'daymind');
    const up = Object.getPrototypeOf(p) as object | null;
    if (own) return own.get === getInfo; // someone's own `daymind` comes first: assign through it
    if (up === IncomingMessage.prototype) {
      Object.defineProperty(p, 'daymind', { get: getInfo, set: setInfo, configurable: true, enumerable: false });
      return true;
    }
    p = up;
  }
  return false; // a plain Node request, or not an IncomingMessage at all
}
