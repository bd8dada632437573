import type { RedisClientLike } from '../../redis/types';

export interface RedisKeyStoreOptions {
  /** An ioredis client or Cluster. The store does not close it. */
  client: RedisClientLike;
  /** Namespace of the store's keys in Redis (all in one hash slot, `{daymind}:...`). Default `daymind`. */
  prefix?: string;
  /** How often changes made by other instances are fetched, in ms. Default 250. */
  pollIntervalMs?: number;
  /**
   * While Redis is unreachable or not answering: `open` (default) keeps answering from the records
   * cached in memory; `closed` refuses look-ups, so requests get 503.
   */
  failureMode?: 'open' | 'closed';
  /** Prefix of generated keys. Default `dm_`. */
  keyPrefix?: string;
  /** How long `init()` waits for Redis before it goes on and keeps retrying in the background. Default 2000 ms. */
  readyTimeoutMs?: number;
  onError?: (err: Error) => void;
  /** The clock, in ms since the epoch, for every time the store stamps or compares. Default `Date.now`. */
  now?: () => number;
}
