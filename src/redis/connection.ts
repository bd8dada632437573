import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { DaymindError, describeError } from '../errors';
import { loadPeer } from '../internal/peer';
import { healthOf } from './health';
import type { RedisClientLike } from './types';

/** The ioredis client types, for the implementation only. */
export type IORedisClient = Redis | Cluster;

/**
 * Client options that keep requests from hanging on Redis: commands time out after
 * `commandTimeoutMs`, fail at once while disconnected (no offline queue), and the client
 * reconnects in the background with backoff up to 2 s.
 */
export function clientOptions(commandTimeoutMs: number): RedisOptions {
  return {
    commandTimeout: commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 2000),
  };
}

/** Loads the optional peer dependency ioredis, or says how to install it. */
export function loadIoredis(variable: string): typeof import('ioredis') {
  return loadPeer(
    'ioredis',
    (cause) =>
      `${variable} asks for Redis, but the optional peer dependency "ioredis" cannot be loaded (${cause}); install it: npm install ioredis`,
  );
}

/** A new ioredis client for `url`, with the non-hanging options above. */
export function connectRedis(url: string, variable: string, commandTimeoutMs: number): IORedisClient {
  const { Redis: RedisClass } = loadIoredis(variable);
  return new RedisClass(url, clientOptions(commandTimeoutMs));
}

/**
 * Reports each outage of the client once through `onError`: when its health finds Redis down, not
 * on every reconnect attempt or failed command. (The health also keeps ioredis' 'error' events
 * from crashing the process for want of a listener.)
 */
export function watchRedisHealth(client: RedisClientLike, onError: (err: Error) => void): void {
  healthOf(client).onDown((cause) =>
    onError(
      new DaymindError(
        'ERR_DAYMIND_UNAVAILABLE',
        `Redis is unavailable (${describeError(cause)}); falling back as configured until it returns`,
        {
          cause,
        },
      ),
    ),
  );
}

/** Resolves when the client is ready, or rejects after `timeoutMs`. */
export function whenReady(client: RedisClientLike, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Redis not ready after ${timeoutMs} ms (status ${client.status})`)), timeoutMs);
    timer.unref();
    client.on('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
