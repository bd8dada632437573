import { DaymindError, describeError } from '../errors';
import type { RedisClientLike } from './types';

/** While Redis is down, how long after a failed PING the next one goes out. */
export const PROBE_INTERVAL_MS = 500;

interface Pingable extends RedisClientLike {
  ping(): Promise<unknown>;
}

/**
 * A circuit breaker for one Redis client, shared by everything daymind-auth sends through that
 * client (rate limiter, key store, quota and credits spend, usage history): see {@link healthOf}.
 *
 * A command that times out or fails for want of a connection marks Redis down for all of them at
 * once. While it is down, {@link run} rejects at once without sending anything, so each request
 * falls back as its failure mode says instead of waiting for a timeout of its own: a frozen Redis
 * costs the requests in flight one command timeout, and the requests after them nothing. Redis
 * is up again when it answers a PING: one is sent when it goes down, then one at a time
 * {@link PROBE_INTERVAL_MS} after each that failed, and one when the client reconnects. An error
 * that Redis itself sent back (a ReplyError) does not count: Redis answered.
 */
export class RedisHealth {
  private up = true;
  private cause: unknown;
  private pinging = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(cause: unknown) => void> = [];

  constructor(private readonly client: Pingable) {
    // Also keeps ioredis' 'error' events from crashing the process for want of a listener.
    client.on('error', (err: Error) => this.failed(err));
    // A lost connection is an outage even when the client reconnects before any error: requests
    // meanwhile were not sent. (A client closed on purpose is already 'end' when this comes.)
    client.on('close', () => this.failed(new Error('the connection was closed')));
    client.on('ready', () => {
      if (!this.up) this.probe();
    });
    client.on('end', () => clearTimeout(this.timer));
  }

  /**
   * Whether commands may be sent now: no timeout or lost connection since Redis last answered. A
   * client not connected yet is not down: its own options say whether it queues or fails.
   */
  get healthy(): boolean {
    return this.up;
  }

  /** For the request path: sends `command` when Redis is healthy, else rejects at once. */
  run<T>(command: () => Promise<T>): Promise<T> {
    if (!this.healthy) return Promise.reject(this.down());
    return this.watch(command());
  }

  /**
   * For background writes (usage, history), sent whatever the state: they make no request wait,
   * and the last flush at shutdown must be tried. A failure that is not Redis' own answer marks it
   * down, as on the request path.
   */
  watch<T>(command: Promise<T>): Promise<T> {
    return command.catch((err: unknown) => {
      this.failed(err);
      throw err;
    });
  }

  /** The error for a request that did not ask Redis because it is down. */
  down(): DaymindError {
    return new DaymindError('ERR_DAYMIND_UNAVAILABLE', `Redis is not answering (${describeError(this.cause)})`, { cause: this.cause });
  }

  /** Marks Redis down after `err`, unless Redis answered it or the client was closed on purpose. */
  failed(err: unknown): void {
    if (!this.up || (err as Error | undefined)?.name === 'ReplyError' || this.client.status === 'end') return;
    this.up = false;
    this.cause = err;
    for (const listener of this.listeners) listener(err);
    // At once: a Redis that was only slow for a moment answers it as soon as it catches up.
    this.probe();
  }

  /** Calls `listener` each time Redis goes down (once an outage), with what failed. */
  onDown(listener: (cause: unknown) => void): void {
    this.listeners.push(listener);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.probe(), PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  /**
   * One PING at a time: on a client without a command timeout it waits until Redis answers, which
   * is the answer sought; a failed one is tried again after the interval.
   */
  private probe(): void {
    if (this.pinging || this.client.status === 'end') return;
    this.pinging = true;
    this.client.ping().then(
      () => {
        this.pinging = false;
        this.up = true;
        clearTimeout(this.timer);
      },
      () => {
        this.pinging = false;
        this.schedule();
      },
    );
  }
}

const healths = new WeakMap<RedisClientLike, RedisHealth>();

/** The one health of `client`, so that a timeout seen by any part stops all of them from waiting. */
export function healthOf(client: RedisClientLike): RedisHealth {
  let health = healths.get(client);
  if (!health) {
    health = new RedisHealth(client as Pingable);
    healths.set(client, health);
  }
  return health;
}
