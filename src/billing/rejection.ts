import type { UsageReport } from './types';

/** Thrown by a BillingProvider for a report it will never accept: it is dead-lettered, not retried. */
export class BillingRejection extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BillingRejection';
  }
}

/**
 * Thrown by a BillingProvider for "not now, try again after `retryAfterMs`" (a 429 with a
 * Retry-After): the customer's reports wait at least that long, the other customers' go on.
 */
export class BillingRetryLater extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = 'BillingRetryLater';
  }
}

/** A report that was rejected for good, as written to the dead-letter file. */
export interface DeadLetter {
  report: UsageReport;
  reason: string;
  /** Unix seconds. */
  at: number;
}
