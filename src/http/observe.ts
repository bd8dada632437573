import { DaymindError, describeError } from '../errors';
import type { VerifyCode } from '../pipeline/verify-types';

/** How the middleware answered a request, as counted by metrics. */
export type RequestOutcome =
  | 'allowed'
  | 'missing_api_key'
  | 'invalid_api_key'
  | 'revoked_api_key'
  | 'expired_api_key'
  | 'ip_rate_limited'
  | 'key_rate_limited'
  | 'quota_exceeded'
  | 'credits_exhausted'
  | 'insufficient_scope'
  | 'store_unavailable';

export const REQUEST_OUTCOMES: readonly RequestOutcome[] = [
  'allowed',
  'missing_api_key',
  'invalid_api_key',
  'revoked_api_key',
  'expired_api_key',
  'ip_rate_limited',
  'key_rate_limited',
  'quota_exceeded',
  'credits_exhausted',
  'insufficient_scope',
  'store_unavailable',
];

/** One request as the middleware saw it, handed to {@link DaymindAuth.observe} listeners. */
export interface RequestEvent {
  outcome: RequestOutcome;
  /** Time the middleware took to decide, in seconds. */
  durationSeconds: number;
  /** The key's owner, when a key was found. */
  owner: string | undefined;
  /** The key's hash, when a key was found. */
  keyHash?: string;
}

export type RequestListener = (event: RequestEvent) => void;

/** The state of the background parts, read when metrics are scraped. */
export interface DaymindStats {
  /** Keys the store holds in memory (null when the store cannot tell). */
  keysLoaded: number | null;
  /** Duration of the last successful usage flush, in seconds (null before the first). */
  lastFlushDurationSeconds: number | null;
  /** Unix time in seconds of the last successful usage flush (null before the first). */
  lastFlushAt: number | null;
  /** Usage flushes that failed since start. */
  flushErrors: number;
  /** Usage units counted and not written to the store yet (waiting for the next flush, or for the store to take them again). */
  unflushedUnits: number;
  /**
   * Usage reports waiting for the billing provider, counting one for each key and billing window
   * not closed yet (null without billing).
   */
  billingOutboxDepth: number | null;
  /** Age in seconds of the oldest usage in a report waiting for the billing provider (null when none waits, or without billing). */
  billingOldestPendingSeconds: number | null;
  /** Size in bytes of the billing outbox file (null without billing). */
  billingOutboxBytes: number | null;
  /** Usage alerts this process claimed since start (null without alerts). */
  alertsEmitted: number | null;
  /** Webhook deliveries of alerts that reached a receiver since start (null without alerts). */
  alertsDelivered: number | null;
  /** Webhook deliveries of alerts that failed since start and are retried (null without alerts). */
  alertsFailed: number | null;
  /** Whether Redis is in use: connected, and answering since its last timeout (null without Redis). */
  redisConnected: boolean | null;
}

/** The outcome of a verification code (a malformed key counts as invalid). */
export function outcomeOf(code: VerifyCode): RequestOutcome {
  switch (code) {
    case 'VALID':
      return 'allowed';
    case 'MISSING':
      return 'missing_api_key';
    case 'REVOKED':
      return 'revoked_api_key';
    case 'EXPIRED':
      return 'expired_api_key';
    case 'RATE_LIMITED':
      return 'key_rate_limited';
    case 'QUOTA_EXCEEDED':
      return 'quota_exceeded';
    case 'CREDITS_EXHAUSTED':
      return 'credits_exhausted';
    case 'UNAVAILABLE':
      return 'store_unavailable';
    default:
      return 'invalid_api_key';
  }
}

/** The listeners of {@link DaymindAuth.observe}: each decided request is told to all of them. */
export class Observers {
  private readonly listeners: RequestListener[] = [];

  constructor(private readonly onError: (err: Error) => void) {}

  /** Whether anyone listens: the middleware then times its decisions. */
  get active(): boolean {
    return this.listeners.length > 0;
  }

  /** Adds `listener`; returns a function that removes it. */
  add(listener: RequestListener): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  /** Tells every listener of a request decided since `started` (performance.now()). A listener that throws is reported. */
  emit(outcome: RequestOutcome, owner: string | undefined, started: number, keyHash?: string): void {
    if (this.listeners.length === 0) return;
    const event: RequestEvent = { outcome, durationSeconds: (performance.now() - started) / 1000, owner, keyHash };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `a request listener threw: ${describeError(err)}`, { cause: err }));
      }
    }
  }
}
