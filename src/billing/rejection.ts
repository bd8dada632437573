import type { UsageReport } from './types';

/** Thrown by a BillingProvider for a report it will never accept: it is dead-lettered, not retried. */
export class BillingRejection extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BillingRejection';
  }
}

/** A report that was rejected for good, as written to the dead-letter file. */
export interface DeadLetter {
  report: UsageReport;
  reason: string;
  /** Unix seconds. */
  at: number;
}
