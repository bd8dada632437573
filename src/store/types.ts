/**
 * One API key as a store holds it. Field names and units are those of the existing file format
 * (snake_case, Unix seconds, `YYYYMMDD` UTC days); the newer fields are optional.
 */
export interface KeyRecord {
  /** SHA-256 of the full key, hex. The identity of the record. */
  key_hash: string;
  /** Short non-secret display prefix, e.g. `dm_8fJq2L`. */
  key_prefix: string;
  owner: string;
  /** Unix time in seconds (may carry a fraction). */
  created_at: number;
  /** Units of usage ever allowed with this key (one per request unless a request costs more). */
  usage_count: number;
  /** Units allowed on the UTC day `requests_day`. */
  requests_today: number;
  /** That day as `YYYYMMDD`; 0 when never used. */
  requests_day: number;
  /** Unix time in seconds of the last allowed request, or null. */
  last_used: number | null;
  revoked: boolean;
  /** Unix seconds when the key was revoked, where known. */
  revoked_at?: number | null;
  /** Unix seconds from which the key counts as revoked (the grace period of a rotation). */
  revoke_at?: number | null;
  /** Hash of the key this one replaced, when created by a rotation. */
  rotated_from?: string;
  /** Overrides the default per-key limit (`API_RATE_LIMIT_PER_MINUTE`) for this key. */
  rate_limit_per_minute?: number | null;
  /** Unix time in seconds after which the key is refused. */
  expires_at?: number | null;
  /** Free-form data about the key (plan, customer ids, ...). */
  meta?: Record<string, unknown>;
  /** The Stripe customer billed for this key's usage (Stripe billing mode). */
  stripe_customer_id?: string;
  /** The Paddle subscription (`sub_...`) charged for this key's usage (Paddle billing mode). */
  paddle_subscription_id?: string;
  /** The plan (from the `plans` option or `DAYMIND_PLANS_FILE`) whose limits and quota apply. */
  plan?: string;
  /** What the key may do, checked by `requireScope()`. */
  scopes?: string[];
  /** Prepaid units left; each allowed request spends its cost. Absent: the key is not prepaid. */
  credits?: number;
  /** Restores `credits` to `amount` at the start of each UTC day or month. */
  credits_refill?: CreditsRefill;
  /** The period of the last refill: `YYYYMMDD` (daily) or `YYYYMM` (monthly). */
  credits_period?: number;
  /** Units allowed in the UTC month `requests_month`, as `requests_today` is for `requests_day`. */
  requests_this_month?: number;
  /** That month as `YYYYMM`. */
  requests_month?: number;
}

export interface CreditsRefill {
  interval: 'daily' | 'monthly';
  amount: number;
}

/** Usage of one key since the last flush, handed to {@link KeyStore.applyUsage}. */
export interface UsageDelta {
  key_hash: string;
  /** Units to add to `usage_count`. */
  units: number;
  /** Unix seconds of the last allowed request in this delta. */
  last_used: number;
  /**
   * The same units split by UTC day (`YYYYMMDD`), oldest first, for `requests_today`; `requests`
   * is the number of requests that spent them (the per-day history counts requests).
   */
  days: Array<{ day: number; units: number; requests?: number }>;
  /** Of `units`, those spent from prepaid credits (stores that spend credits at flush time). */
  credits?: number;
}

/** Units a request spends from a key's monthly quota and prepaid credits. */
export interface SpendRequest {
  units: number;
  nowMs: number;
  /** The key's monthly quota, or null for none. */
  monthlyQuota: number | null;
}

export interface SpendResult {
  /** `spent`: both taken; otherwise neither was. */
  outcome: 'spent' | 'quota_exceeded' | 'credits_exhausted';
  /** Units of the month counted, after this request when spent. */
  monthUsed: number;
  /** Credits left (after this request when spent); undefined when the key is not prepaid. */
  credits: number | undefined;
}

/** What the usage recorder tells a store about one flush. */
export interface UsageBatch {
  /**
   * Unique per batch and kept across retries: a store whose writes can fail after being applied
   * (a lost reply) records it to apply each batch once.
   */
  batchId: string;
  /**
   * Call it (synchronously) at the moment `get()` starts returning counters that include the
   * deltas, so that live views never count them twice. Without it, live views may count the batch
   * twice until `applyUsage` settles.
   */
  onApplied(): void;
}

export interface NewKeyInput {
  owner: string;
  plan?: string | null;
  scopes?: string[] | null;
  credits?: number | null;
  credits_refill?: CreditsRefill | null;
  rate_limit_per_minute?: number | null;
  /** Unix seconds. */
  expires_at?: number | null;
  meta?: Record<string, unknown>;
  stripe_customer_id?: string | null;
  paddle_subscription_id?: string | null;
}

/** Settings of a key that can change after creation; null removes one. */
export interface KeyChanges {
  /** Who the key belongs to. */
  owner?: string;
  /** Replaces the key's free-form data; null removes it. */
  meta?: Record<string, unknown> | null;
  rate_limit_per_minute?: number | null;
  plan?: string | null;
  scopes?: string[] | null;
  /** Sets the prepaid credits (null: the key is no longer prepaid). */
  credits?: number | null;
  /** Adds to the prepaid credits (negative to take some back; never below 0). */
  add_credits?: number;
  credits_refill?: CreditsRefill | null;
  /** Unix seconds. */
  expires_at?: number | null;
  stripe_customer_id?: string | null;
  paddle_subscription_id?: string | null;
}

export interface RotatedKey extends CreatedKey {
  /** The old key's record: revoked, or with `revoke_at` at the end of the grace period. */
  previous: KeyRecord;
}

export interface CreatedKey {
  /** The full key. It is not stored anywhere: show it once. */
  key: string;
  record: KeyRecord;
}

/**
 * Where keys and their counters live. Implement it to keep keys in another backend.
 *
 * `get` is on the request path: it should answer from memory (synchronously when it can).
 * Counters reach the store only through `applyUsage`, which the usage recorder calls off the
 * request path with the deltas of each flush window; it must add them, never overwrite.
 */
export interface KeyStore {
  /** Starts background work (reloading, watching). Called once by daymindAuth(). */
  init?(): Promise<void>;
  /** The record for a key hash, or undefined. */
  get(keyHash: string): KeyRecord | undefined | Promise<KeyRecord | undefined>;
  /**
   * The record as the backend has it now, counters included (for `/v1/usage` when other
   * instances count too). Without it, `get` is used.
   */
  fetch?(keyHash: string): Promise<KeyRecord | undefined>;
  /** Picks up changes made by others now; called when a well-formed key is not found. */
  refresh?(): Promise<void>;
  /**
   * True when the store holds keys without the checksum format (older deployments or `API_KEYS`),
   * so that a key failing the checksum must still be looked up.
   */
  hasUnchecksummedKeys?(): boolean;
  /**
   * Spends quota and credits at request time, atomically across instances (stores shared by
   * several instances, such as Redis). Without it, quota and credits are counted in this process
   * and written with the usage at each flush.
   */
  spend?(keyHash: string, request: SpendRequest): Promise<SpendResult>;
  /** Gives back what `spend` took for a request that did not count (not billable, refused later). */
  refund?(keyHash: string, request: SpendRequest, spent: SpendResult): Promise<void>;
  /** How many keys the store holds in memory now (for metrics). */
  size?(): number;
  create(input: NewKeyInput): Promise<CreatedKey>;
  /** Marks the key revoked; returns the updated record, or undefined when there is no such key. */
  revoke(keyHash: string): Promise<KeyRecord | undefined>;
  /**
   * Replaces a key in one write: a new key with the same owner and settings, and the old one
   * revoked after `graceSeconds` (at once for 0). Undefined when there is no such key.
   */
  rotate?(keyHash: string, graceSeconds: number): Promise<RotatedKey | undefined>;
  /** Changes a key's settings; returns the updated record, or undefined when there is no such key. */
  update?(keyHash: string, changes: KeyChanges): Promise<KeyRecord | undefined>;
  list(): Promise<KeyRecord[]>;
  /**
   * Adds usage deltas to the stored counters, all or nothing. Rejects when they could not be
   * written; the same batch (same `batchId`) is then offered again before any newer usage.
   */
  applyUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void>;
  close(): Promise<void>;
}
