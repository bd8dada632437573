/**
 * What daymind-auth needs to know of a Redis client passed in: an ioredis `Redis` or `Cluster`.
 * Kept structural so that the package's types do not require ioredis to be installed.
 */
export interface RedisClientLike {
  readonly status: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  quit(): Promise<unknown>;
}
