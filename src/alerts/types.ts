/** What an alert is about. */
export type AlertType =
  'quota.threshold' | 'credits.low' | 'credits.exhausted' | 'rate_limit.first_refusal' | 'key.expiring' | 'key.revoked' | 'key.rotated';

export const ALERT_TYPES: readonly AlertType[] = [
  'quota.threshold',
  'credits.low',
  'credits.exhausted',
  'rate_limit.first_refusal',
  'key.expiring',
  'key.revoked',
  'key.rotated',
];

/**
 * One alert, as sent in a webhook's body (the Standard Webhooks payload shape: type, timestamp,
 * data) and handed to `auth.observeAlerts()` listeners. Its `id` is the same wherever and however
 * often it is detected: a hash of the key, the type, the threshold and the period.
 */
export interface AlertEvent {
  /** `evt_` and 32 hex digits; also the `webhook-id` of its delivery. */
  id: string;
  type: AlertType;
  /** When it was detected, ISO 8601. */
  timestamp: string;
  data: AlertData;
}

export interface AlertData {
  key_prefix: string;
  key_hash: string;
  owner: string;
  /**
   * The threshold crossed: a percentage of the quota (`quota.threshold`), credits
   * (`credits.low`, 0 for `credits.exhausted`), days before expiry (`key.expiring`); null otherwise.
   */
  threshold: number | null;
  /**
   * The period the alert belongs to: `YYYYMM` (quota month, monthly refill), `YYYYMMDD` (rate-limit
   * day, daily refill), 0 (credits without refill), or the Unix seconds of the expiry, revocation
   * or rotation.
   */
  period: number;
  /** Quota: units used this month and the quota. */
  used?: number;
  limit?: number;
  /** Credits left. */
  credits?: number;
  /** Unix seconds of the expiry, revocation or rotation. */
  at?: number;
  /** `key.rotated`: the prefix of the key that replaces this one. */
  replaced_by?: string;
}

/** Called with each alert this process detected first (and so claimed). */
export type AlertListener = (event: AlertEvent) => void;

/** One webhook receiver. */
export interface WebhookEndpoint {
  url: string;
  /** The signing secret, `whsec_` and base64 (Standard Webhooks). */
  secret: string;
}

/** Thresholds of the alerts. */
export interface AlertThresholds {
  /** Percentages of the monthly quota, e.g. [80, 100]. */
  quotaPercents: number[];
  /** Credits below which `credits.low` is sent. */
  creditsBelow: number;
  /** Days before expiry at which `key.expiring` is sent. */
  expiringDays: number;
}

/** An alert claimed and waiting for delivery to some receivers. */
export interface PendingAlert {
  event: AlertEvent;
  /** The receivers (urls) it reached already. */
  deliveredTo: ReadonlySet<string>;
}

/**
 * Where alerts are claimed, once per id across processes and restarts, and wait for delivery.
 * Claiming puts the alert in the outbox in the same durable step.
 */
export interface AlertLog {
  /** Claims the alerts not claimed before; answers those this call claimed. */
  claim(events: AlertEvent[]): Promise<AlertEvent[]>;
  /** The claimed alerts not yet delivered to every url in `urls`, oldest first. */
  pending(urls: readonly string[]): Promise<PendingAlert[]>;
  /** Records that alerts reached `url` (of the receivers `urls`: one that reached them all may leave the outbox). */
  delivered(ids: string[], url: string, urls: readonly string[]): Promise<void>;
  /**
   * Runs `run` when no other process is delivering (one deliverer at a time, so that a receiver
   * gets an alert once); undefined when another one is.
   */
  whileDelivering<T>(run: () => Promise<T>): Promise<T | undefined>;
  /**
   * Drops what is no longer needed, when it pays: alerts delivered to every url in `urls` whose
   * period is over (they cannot be detected again).
   */
  tidy(urls: readonly string[], nowMs: number): Promise<void>;
  close(): Promise<void>;
}
