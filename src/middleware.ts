import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { resolveConfig, type DaymindOptions, type ResolvedConfig } from './config';
import { DaymindError, describeError } from './errors';
import { extractKey } from './extract';
import { setRateLimitHeaders } from './ratelimit/headers';
import { ipLimitKey } from './ratelimit/ip';
import { MemoryRateLimiter } from './ratelimit/memory';
import type { RateLimitResult, RateLimitWindow, RateLimiterAdapter } from './ratelimit/types';
import { sendRateLimited, sendUnauthorized, sendUnavailable } from './responses';
import { join } from 'node:path';
import { BillingDispatcher } from './billing/dispatcher';
import { LocalLedgerProvider } from './billing/ledger';
import { Outbox } from './billing/outbox';
import { reportsFor } from './billing/reports';
import { StripeBillingProvider } from './billing/stripe';
import { RedisRateLimiter } from './ratelimit/redis';
import { connectRedis, watchRedisHealth } from './redis/connection';
import type { RedisClientLike } from './redis/types';
import { JsonFileKeyStore } from './store/json-file';
import { MemoryKeyStore } from './store/memory';
import { RedisKeyStore } from './store/redis';
import type { KeyRecord, KeyStore } from './store/types';
import { UsageRecorder, type LiveUsage } from './usage/recorder';
import { createUsageRouter } from './usage/router';
import { Verifier, type VerifyOptions, type VerifyResult } from './verify';
import './request-info';

/** The middleware returned by {@link daymindAuth}, with the parts it composes. */
export interface DaymindAuth extends RequestHandler {
  readonly config: Readonly<ResolvedConfig>;
  readonly store: KeyStore;
  readonly limiter: RateLimiterAdapter;
  /** Resolves when the store is ready; requests that arrive earlier wait for it. */
  readonly ready: Promise<void>;
  /** A router serving `GET /usage` for the calling key (mount it under `/v1`). */
  usageRouter(): Router;
  /** The core check without HTTP: key, status, the key's limits, usage counting. */
  verify(key: string | undefined, options?: VerifyOptions): Promise<VerifyResult>;
  /** A key's counters as they stand now, unflushed usage included. */
  usage(record: KeyRecord, nowMs?: number): LiveUsage;
  /** Writes pending usage to the store now. */
  flush(): Promise<void>;
  /** Delivers pending usage reports to the billing provider now (no-op without billing). */
  deliverBilling(): Promise<void>;
  /** Stops background work and writes pending usage. Call it on shutdown. */
  close(): Promise<void>;
}

function createBilling(config: ResolvedConfig): BillingDispatcher | undefined {
  if (config.billing === false) return undefined;
  const dir = config.ledgerDir;
  const provider =
    typeof config.billing === 'object'
      ? config.billing
      : config.billing === 'stripe'
        ? new StripeBillingProvider({ ...config.stripe!, ledger: new LocalLedgerProvider(dir), onError: config.onError })
        : new LocalLedgerProvider(dir);
  const outbox = new Outbox(join(dir, 'billing-outbox.jsonl'), (line) =>
    config.onError(
      new DaymindError('ERR_DAYMIND_BILLING', `line ${line} of ${join(dir, 'billing-outbox.jsonl')} is damaged and was skipped`),
    ),
  );
  return new BillingDispatcher(outbox, provider, {
    intervalMs: config.billingIntervalMs,
    deadLetterPath: join(dir, 'billing-dead-letter.jsonl'),
    onError: config.onError,
  });
}

/** The Redis client to use, and whether daymind-auth made it (and so closes it). */
function createRedis(config: ResolvedConfig): { client: RedisClientLike; owned: boolean } | undefined {
  if (config.redis === undefined) return undefined;
  const owned = typeof config.redis === 'string';
  const client =
    typeof config.redis === 'string'
      ? connectRedis(config.redis, 'the Redis setting (REDIS_URL or redis)', config.redisCommandTimeoutMs)
      : config.redis;
  watchRedisHealth(client, config.onError);
  return { client, owned };
}

function createStore(config: ResolvedConfig, redis: RedisClientLike | undefined): KeyStore {
  if (config.store) return config.store;
  if (config.keyStore === 'memory') return new MemoryKeyStore({ keys: config.keys, keyPrefix: config.keyPrefix });
  if (config.keyStore === 'redis') {
    return new RedisKeyStore({
      client: redis!,
      prefix: config.redisPrefix,
      failureMode: config.redisFailureMode,
      keyPrefix: config.keyPrefix,
      onError: config.onError,
    });
  }
  return new JsonFileKeyStore({
    path: config.storePath,
    reloadIntervalMs: config.reloadIntervalMs,
    keyPrefix: config.keyPrefix,
    onError: config.onError,
  });
}

/**
 * API-key authentication, per-IP and per-key rate limits and usage counting as one Express
 * middleware. Configured from `options`, else the environment; a bad value throws here, naming
 * the option or variable, and never at request time.
 */
export function daymindAuth(options: DaymindOptions = {}): DaymindAuth {
  const config = resolveConfig(options);
  const redis = createRedis(config);
  let store: KeyStore;
  try {
    store = createStore(config, redis?.client);
  } catch (err) {
    // A store that cannot start (a corrupt file) must not leave a Redis connection keeping the process alive.
    if (redis?.owned) (redis.client as unknown as { disconnect(): void }).disconnect();
    throw err;
  }
  const limiter: RateLimiterAdapter =
    config.rateLimiter ??
    (redis
      ? new RedisRateLimiter({ client: redis.client, prefix: config.redisPrefix, failureMode: config.redisFailureMode })
      : new MemoryRateLimiter());
  const billing = createBilling(config);
  const recorder = new UsageRecorder(
    store,
    config.flushIntervalMs,
    config.onError,
    billing && ((batchId, deltas, window) => billing.enqueueLater(reportsFor(batchId, deltas, window, (hash) => store.get(hash)))),
  );
  const verifier = new Verifier({
    store,
    limiter,
    recorder,
    keyPrefix: config.keyPrefix,
    defaultRateLimitPerMinute: config.rateLimitPerMinute,
    onError: config.onError,
  });
  const ipWindow: RateLimitWindow | undefined =
    config.ipRateLimitPerMinute === false ? undefined : { name: 'ip', limit: config.ipRateLimitPerMinute, windowSeconds: 60 };

  let isReady = false;
  const ready = Promise.resolve(store.init?.()).then(() => {
    isReady = true;
    recorder.start();
    billing?.start();
  });
  ready.catch((err) =>
    config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `key store failed to start: ${describeError(err)}`, { cause: err })),
  );

  /** Resolves true when the request may go on; answers it otherwise. */
  async function authenticate(req: Request, res: Response): Promise<boolean> {
    if (!isReady) await ready;
    const limits: RateLimitResult[] = [];
    if (ipWindow) {
      const ipResult = await limiter.consume(ipWindow, ipLimitKey(req.ip), 1);
      limits.push(ipResult);
      if (!ipResult.allowed) {
        setRateLimitHeaders(res, limits);
        sendRateLimited(res, ipResult);
        return false;
      }
    }
    const result = await verifier.verify(extractKey(req, config.queryParam));
    limits.push(...result.limits);
    setRateLimitHeaders(res, limits);
    switch (result.code) {
      case 'VALID': {
        const record = result.record!;
        req.daymind = {
          keyPrefix: record.key_prefix,
          keyHash: record.key_hash,
          owner: record.owner,
          meta: record.meta ?? {},
          limits: result.limits,
          cost: result.cost,
          record,
        };
        return true;
      }
      case 'RATE_LIMITED':
        sendRateLimited(res, result.refusedBy!);
        return false;
      case 'UNAVAILABLE':
        sendUnavailable(res);
        return false;
      default:
        sendUnauthorized(res, result.code);
        return false;
    }
  }

  const middleware = ((req: Request, res: Response, next: NextFunction): void => {
    authenticate(req, res)
      .then(
        (proceed) => {
          if (proceed) next();
        },
        (err: unknown) => {
          config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `request refused with 503: ${describeError(err)}`, { cause: err }));
          if (!res.headersSent) sendUnavailable(res);
        },
      )
      .catch(next);
  }) as DaymindAuth;

  const ensureAuthenticated: RequestHandler = (req, res, next) => {
    if (req.daymind) next();
    else middleware(req, res, next);
  };

  let closing: Promise<void> | undefined;
  Object.assign(middleware, {
    config,
    store,
    limiter,
    ready,
    usageRouter: () => createUsageRouter({ store, recorder, ensureAuthenticated }),
    verify: (key: string | undefined, opts?: VerifyOptions) => verifier.verify(key, opts),
    usage: (record: KeyRecord, nowMs = Date.now()) => recorder.live(record, nowMs),
    flush: () => recorder.flush(),
    deliverBilling: async () => {
      await billing?.deliver();
    },
    close: () =>
      (closing ??= (async () => {
        try {
          await recorder.close();
        } finally {
          await billing?.close();
          await store.close();
          await limiter.close?.();
          if (redis?.owned) await redis.client.quit().catch(() => undefined);
        }
      })()),
  });
  return middleware;
}
