import { ipLimitKey } from '../limits/ip';
import type { RateLimitResult, RateLimitWindow, RateLimiterAdapter } from '../limits/types';

/** The IP limit stage: one unit of the client's per-minute window (its IPv4 address, or its IPv6 /64). */
export class IpLimit {
  /** One object for the instance: the limiter keeps its counters by window. */
  readonly window: RateLimitWindow;

  constructor(
    private readonly limiter: RateLimiterAdapter,
    limitPerMinute: number,
  ) {
    this.window = { name: 'ip', limit: limitPerMinute, windowSeconds: 60 };
  }

  /** Rejects when the limiter fails (Redis down with failure mode `closed`). */
  take(clientAddress: string | undefined): Promise<RateLimitResult> {
    return this.limiter.consume(this.window, ipLimitKey(clientAddress), 1);
  }
}
