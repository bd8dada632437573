import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { resolveConfig } from '../config/config';
import type { DaymindOptions, ResolvedConfig } from '../config/options';
import { DaymindError, describeError } from '../errors';
import { extractKey } from './extract-key';
import { checkRequest, requestChecks, type RequestCheckParts } from './check-request';
import { Guards } from './guards';
import { HeldUsage } from './held-usage';
import { clientAddress } from '../limits/ip';
import { MemoryRateLimiter } from '../limits/memory';
import type { RateLimiterAdapter } from '../limits/types';
import { answerRefusalWith, sendJsonBody, sendUnavailable, type RefusalAnswer } from './responses';
import { RedisRateLimiter } from '../limits/redis';
import { healthOf } from '../redis/health';
import type { KeyRecord, KeyStore } from '../store/types';
import { UsageRecorder, type LiveUsage } from '../usage/recorder';
import type { UsageRouterOptions } from '../usage/router';
import { UsageRouters } from '../usage/handover';
import { IpLimit } from '../pipeline/ip-limit';
import { Verifier, type VerifyOptions, type VerifyResult } from '../pipeline/verifier';
import { Observers, outcomeOf, type DaymindStats, type RequestListener, type RequestOutcome } from './observe';
import { PlansFileWatcher } from '../limits/plans-reload';
import { billingStatsOf, createBilling, createHistory, createRedis, createStore } from '../create-parts';
import { requestInfo } from './request-info';
import { alertStatsOf, createAlerts, rateLimitListener } from '../alerts/create';
import type { AlertListener } from '../alerts/types';

/** What the middleware decided for a request: it goes on when the outcome is `allowed`. */
interface Decision {
  outcome: RequestOutcome;
  owner: string | undefined;
  keyHash?: string;
}

/** The middleware returned by {@link daymindAuth}, with the parts it composes. */
export interface DaymindAuth extends RequestHandler {
  readonly config: Readonly<ResolvedConfig>;
  readonly store: KeyStore;
  readonly limiter: RateLimiterAdapter;
  /** Resolves when the store is ready; requests that arrive earlier wait for it. */
  readonly ready: Promise<void>;
  /**
   * A router serving `GET /usage` and `GET /usage/history` for the calling key, and with
   * `{ dashboard: true }` the usage page at `GET /usage/dashboard`. Mount it under `/v1` with the
   * middleware, `app.use('/v1', auth, auth.usageRouter())` (or before it): the middleware hands
   * it its routes untouched. The page needs no key; the data routes check the key themselves and
   * spend nothing: they are not usage, and answer while the key is rate-limited.
   */
  usageRouter(options?: UsageRouterOptions): Router;
  /** The core check without HTTP: key, status, the key's limits, usage counting. */
  verify(key: string | undefined, options?: VerifyOptions): Promise<VerifyResult>;
  /**
   * Route middleware: the request costs `units` in all, spent on every window, the quota, the
   * credits, usage_count and billing alike (after the middleware, it takes the difference).
   */
  cost(units: number): RequestHandler;
  /** Route middleware: 403 `insufficient_scope` unless the key carries `scope`; a refused request is not usage. */
  requireScope(scope: string): RequestHandler;
  /** A key's counters as they stand now, unflushed usage included. */
  usage(record: KeyRecord, nowMs?: number): LiveUsage;
  /** Writes pending usage to the store now. */
  flush(): Promise<void>;
  /** Delivers pending usage reports to the billing provider now (no-op without billing). */
  deliverBilling(): Promise<void>;
  /**
   * Calls `listener` after every request the middleware decided on (outcome, time taken, owner).
   * Returns a function that removes it. Metrics use this; a listener must be quick.
   */
  observe(listener: RequestListener): () => void;
  /**
   * Calls `listener` with each usage alert (quota, credits, rate limit, expiry, revocation) this
   * process detected first; every alert reaches the listeners of exactly one process. Returns a
   * function that removes it. See docs/alerts.md.
   */
  observeAlerts(listener: AlertListener): () => void;
  /** Checks the keys for alerts and delivers the webhooks' outbox now (no-op without alerts). */
  deliverAlerts(): Promise<void>;
  /** The state of the background parts (keys loaded, last flush, billing outbox, Redis). */
  stats(): Promise<DaymindStats>;
  /** Stops background work and writes pending usage. Call it on shutdown. */
  close(): Promise<void>;
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
  // The plans in force: those of start-up, kept equal to the plans file while it changes.
  const plans = new Map(config.plans);
  const plansWatcher = config.plansFile
    ? new PlansFileWatcher(config.plansFile, plans, config.reloadIntervalMs, config.onError)
    : undefined;
  const billing = createBilling(config, plans);
  const recorder = new UsageRecorder(
    store,
    config.flushIntervalMs,
    config.onError,
    billing && ((batchId, deltas, window) => billing.addBatch(batchId, deltas, window, (hash) => store.get(hash))),
    createHistory(config, store, redis?.client),
    config.now,
  );
  const alerts = createAlerts(config, store, recorder, plans, redis?.client);
  const verifier = new Verifier({
    store,
    limiter,
    recorder,
    keyPrefix: config.keyPrefix,
    defaultRateLimitPerMinute: config.rateLimitPerMinute,
    plans,
    now: config.now,
    onError: config.onError,
  });

  const ready = Promise.resolve(store.init?.()).then(() => {
    recorder.start();
    billing?.start();
    alerts?.start();
  });
  ready.catch((err) =>
    config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `key store failed to start: ${describeError(err)}`, { cause: err })),
  );
  const pipeline: RequestCheckParts = {
    ready,
    ipLimit: config.ipRateLimitPerMinute === false ? undefined : new IpLimit(limiter, config.ipRateLimitPerMinute),
    verifier,
    recorder,
    legacyHeaders: config.legacyHeaders,
    now: config.now,
  };
  const observers = new Observers(config.onError);
  if (alerts) observers.add(rateLimitListener(alerts));
  const held = new HeldUsage({ verifier, billable: config.billable, onError: config.onError, now: config.now });

  /**
   * The request through the pipeline, then on to the app when it was allowed: `req.daymind` set,
   * and its usage held until its response ends when something may still refuse or exclude it.
   */
  async function decide(req: Request, res: Response, cost: number): Promise<Decision> {
    const { ip, result, at } = await checkRequest(pipeline, res, {
      key: extractKey(req, config.queryParam),
      clientAddress: clientAddress(req),
      cost,
      defer: held.defers,
    });
    if (!result) return { outcome: 'ip_rate_limited', owner: undefined };
    if (result.code === 'VALID') {
      req.daymind = requestInfo(result);
      if (held.defers) held.hold(req, res, result, ip, at);
    } else if (result.code === 'MISSING') usageRouters.missingKey(req);
    return { outcome: outcomeOf(result.code), owner: result.record?.owner, keyHash: result.record?.key_hash };
  }

  /** The middleware, at the `cost` option's units or `costOverride` (a route guard used alone). */
  function run(req: Request, res: Response, next: NextFunction, costOverride: number | undefined): void {
    const started = observers.active ? performance.now() : 0;
    let decided: Promise<Decision> | undefined;
    try {
      // A request the skip option exempts goes on untouched (next() runs outside this try).
      if (!config.skip?.(req, res)) {
        if (config.handler) answerRefusalWith(res, customRefusal(req, res, next));
        decided = decide(req, res, costOverride ?? costOf(req));
      }
    } catch (err) {
      return fail(err, res, started);
    }
    if (!decided) return next();
    decided
      .then(
        (decision) => {
          observers.emit(decision.outcome, decision.owner, started, decision.keyHash);
          if (decision.outcome === 'allowed') next();
        },
        (err: unknown) => fail(err, res, started),
      )
      .catch(next);
  }

  function fail(err: unknown, res: Response, started: number): void {
    observers.emit('store_unavailable', undefined, started);
    config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `request refused with 503: ${describeError(err)}`, { cause: err }));
    if (!res.headersSent) sendUnavailable(res);
  }

  /** The `handler` option answering this request's refusal; one that throws gets the JSON answer. */
  function customRefusal(req: Request, res: Response, next: NextFunction): RefusalAnswer {
    return (refusal) => {
      try {
        config.handler!(req, res, next, refusal);
      } catch (err) {
        config.onError(new DaymindError('ERR_DAYMIND_CONFIG', `the handler option threw: ${describeError(err)}`, { cause: err }));
        if (!res.headersSent) sendJsonBody(res, refusal.body);
      }
    };
  }

  /** Units of a request by the `cost` option (1 without it). */
  function costOf(req: Request): number {
    if (!config.cost) return 1;
    const units = config.cost(req);
    if (!Number.isSafeInteger(units) || units < 1)
      throw new Error(`the cost option returned ${String(units)}, not a whole number of at least 1`);
    return units;
  }

  // The usage routes go to the usage routers untouched: they check the key themselves, spending nothing.
  const usageRouters = new UsageRouters({
    store,
    recorder,
    now: config.now,
    onError: config.onError,
    check: async (req, res, next) => {
      if (config.handler) answerRefusalWith(res, customRefusal(req, res, next));
      const request = { key: extractKey(req, config.queryParam), clientAddress: clientAddress(req), cost: 1, peek: true };
      return (await checkRequest(pipeline, res, request)).result;
    },
  });
  const guards = new Guards({
    verifier,
    held,
    onError: config.onError,
    now: config.now,
    legacyHeaders: config.legacyHeaders,
    authenticate: (req, res, next, cost) => run(req, res, next, cost),
    emit: (outcome, owner, keyHash) => observers.emit(outcome, owner, performance.now(), keyHash),
  });
  const middleware = ((req: Request, res: Response, next: NextFunction): void => {
    if (!usageRouters.serve(req, res, next, () => run(req, res, next, undefined))) run(req, res, next, undefined);
  }) as DaymindAuth;
  requestChecks.set(middleware, pipeline);

  let closing: Promise<void> | undefined;
  Object.assign(middleware, {
    config,
    store,
    limiter,
    ready,
    usageRouter: (routerOptions?: UsageRouterOptions) => usageRouters.make(routerOptions),
    verify: (key: string | undefined, opts?: VerifyOptions) => verifier.verify(key, { ...opts, defer: false }),
    cost: (units: number) => guards.cost(units),
    requireScope: (scope: string) => guards.requireScope(scope),
    usage: (record: KeyRecord, nowMs = config.now()) => recorder.live(record, nowMs),
    flush: () => recorder.flush(),
    observe: (listener: RequestListener) => observers.add(listener),
    stats: async (): Promise<DaymindStats> => ({
      keysLoaded: store.size?.() ?? null,
      ...recorder.flushStats(),
      ...billingStatsOf(billing && (await billing.stats())),
      ...alertStatsOf(alerts),
      redisConnected: redis ? redis.client.status === 'ready' && healthOf(redis.client).healthy : null,
    }),
    deliverBilling: async () => {
      await billing?.deliver();
    },
    observeAlerts: (listener: AlertListener) => alerts?.observe(listener) ?? (() => undefined),
    deliverAlerts: async () => {
      await alerts?.runNow();
    },
    close: () =>
      (closing ??= (async () => {
        plansWatcher?.stop();
        try {
          await recorder.close();
        } finally {
          await recorder.history?.close?.();
          await alerts?.close();
          await billing?.close();
          await store.close();
          await limiter.close?.();
          // quit() fails while the client is reconnecting (no offline queue): disconnect then, or
          // its reconnect timer would keep the process alive.
          if (redis?.owned) await redis.client.quit().catch(() => (redis.client as unknown as { disconnect(): void }).disconnect());
        }
      })()),
  });
  return middleware;
}
