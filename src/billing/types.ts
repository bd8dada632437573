/**
 * One key's usage over one billing window (for one Stripe customer), as handed to a biller. The
 * same report always carries the same `identifier`, also when it is delivered again after a
 * failure or a restart, so a biller that keeps identifiers (Stripe does for 24 h) never counts it
 * twice.
 */
export interface UsageReport {
  /** Deterministic and unique per report: `dmu_` + 40 hex digits. */
  identifier: string;
  key_hash: string;
  key_prefix: string;
  owner: string;
  /**
   * The account billed: the key's `stripe_customer_id`, where it has one; in Paddle mode its
   * `paddle_subscription_id` and the price charged, as `sub_.../pri_...`.
   */
  customer_id: string | null;
  /** Units used in the window. */
  quantity: number;
  /** Unix seconds: the start of the billing window. */
  window_start: number;
  /** Unix seconds: when the last of these units was flushed, inside the billing window. */
  window_end: number;
}

/**
 * What became of one report of a {@link BillingProvider.deliverBatch} call: `null` when it is
 * recorded, a {@link BillingRejection} when it can never be accepted (dead-lettered), any other
 * error for "try again later" (a {@link BillingRetryLater} says when).
 */
export type DeliveryOutcome = Error | null;

/**
 * A biller (the local ledger, Stripe, or your own: Paddle, Lago, ...). `deliver` resolves once the
 * report is safely recorded. Throw a {@link BillingRejection} for a report that can never be
 * accepted (it goes to the dead-letter file); any other error means "try again later".
 */
export interface BillingProvider {
  readonly name: string;
  deliver(report: UsageReport): Promise<void>;
  /**
   * Optional: records many reports in one call, answering with one outcome per report, in the
   * same order. Throwing means "try every one of them again later". When present it is used
   * instead of `deliver`, with at most `batchSize` reports a call.
   */
  deliverBatch?(reports: UsageReport[]): Promise<DeliveryOutcome[]>;
  /** Most reports in one `deliverBatch` call. Default 100. */
  readonly batchSize?: number;
  close?(): Promise<void>;
}
