/**
 * One key's usage over one flush window, as handed to a biller. The same report always carries
 * the same `identifier`, also when it is delivered again after a failure or a restart, so a biller
 * that keeps identifiers (Stripe does for 24 h) never counts it twice.
 */
export interface UsageReport {
  /** Deterministic and unique per report: `dmu_` + 40 hex digits. */
  identifier: string;
  key_hash: string;
  key_prefix: string;
  owner: string;
  /** The key's `stripe_customer_id`, where it has one. */
  customer_id: string | null;
  /** Units used in the window. */
  quantity: number;
  /** Unix seconds. */
  window_start: number;
  /** Unix seconds. */
  window_end: number;
}

/**
 * A biller (the local ledger, Stripe, or your own: Paddle, Lago, ...). `deliver` resolves once the
 * report is safely recorded. Throw a {@link BillingRejection} for a report that can never be
 * accepted (it goes to the dead-letter file); any other error means "try again later".
 */
export interface BillingProvider {
  readonly name: string;
  deliver(report: UsageReport): Promise<void>;
  close?(): Promise<void>;
}
