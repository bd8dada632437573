import type { IncomingHttpHeaders } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { resolveConfig, type DaymindOptions, type ResolvedConfig } from './config';
import { DaymindError, describeError } from './errors';
import { extractKey } from './extract';
import { resetSeconds, setRateLimitHeaders } from './ratelimit/headers';
import { clientAddress, ipLimitKey } from './ratelimit/ip';
import { MemoryRateLimiter } from './ratelimit/memory';
import type { ConsumeRequest, RateLimitResult, RateLimitWindow, RateLimiterAdapter } from './ratelimit/types';
import { answerRefusalWith, sendJsonBody, sendRateLimited, sendRefusal, sendUnavailable, type RefusalAnswer } from './responses';
import { RequestUsageTracker } from './request-usage';
import { RedisRateLimiter } from './ratelimit/redis';
import { healthOf } from './redis/health';
import type { KeyRecord, KeyStore } from './store/types';
import { UsageRecorder, type LiveUsage } from './usage/recorder';
import type { UsageRouterOptions } from './usage/router';
import { UsageRouters } from './usage/handover';
import { Verifier, type LeadWindow, type VerifyOptions, type VerifyResult } from './verify';
import { outcomeOf, type DaymindStats, type RequestEvent, type RequestListener, type RequestOutcome } from './observe';
import { PlansFileWatcher } from './plans-reload';
import { billingStatsOf, createBilling, createHistory, createRedis, createStore } from './parts';
import { setRequestInfo } from './request-info';
import { checkRequest } from './verify-request';
import { alertStatsOf, createAlerts, rateLimitListener } from './alerts/create';
import type { AlertListener } from './alerts/types';

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
  const billing = createBilling(config);
  const recorder = new UsageRecorder(
    store,
    config.flushIntervalMs,
    config.onError,
    billing && ((batchId, deltas, window) => billing.addBatch(batchId, deltas, window, (hash) => store.get(hash))),
    createHistory(config, store, redis?.client),
    config.now,
  );
  // The plans in force: those of start-up, kept equal to the plans file while it changes.
  const plans = new Map(config.plans);
  const plansWatcher = config.plansFile
    ? new PlansFileWatcher(config.plansFile, plans, config.reloadIntervalMs, config.onError)
    : undefined;
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
  const ipWindow: RateLimitWindow | undefined =
    config.ipRateLimitPerMinute === false ? undefined : { name: 'ip', limit: config.ipRateLimitPerMinute, windowSeconds: 60 };

  let isReady = false;
  const ready = Promise.resolve(store.init?.()).then(() => {
    isReady = true;
    recorder.start();
    billing?.start();
    alerts?.start();
  });
  ready.catch((err) =>
    config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `key store failed to start: ${describeError(err)}`, { cause: err })),
  );

  /** What authenticate() decided: the request goes on when the outcome is `allowed`. */
  interface Decision {
    outcome: RequestOutcome;
    owner: string | undefined;
    keyHash?: string;
  }
  const IP_LIMITED: Decision = { outcome: 'ip_rate_limited', owner: undefined };

  /** A request refused by the IP limit still shows in its key's history as rate-limited. */
  async function countIpLimited(key: string | undefined): Promise<void> {
    const record = await verifier.identify(key);
    if (record) recorder.recordRateLimited(record.key_hash, config.now());
  }

  /**
   * Lets the request go on or answers it. Synchronous when the limiter and the store answer
   * synchronously (the default product): no promise is made on that path.
   */
  function authenticate(req: Request, res: Response, cost: number): Decision | Promise<Decision> {
    if (!isReady) return ready.then(() => authenticate(req, res, cost));
    // Read once: every property read on req is slow (Express gives each request its own shape).
    const headers = req.headers;
    if (!ipWindow) return checkKey(req, res, headers, undefined, cost);
    const subject = ipLimitKey(clientAddress(req, headers));
    const ipResult = limiter.consumeSync?.(ipWindow, subject, 1);
    if (ipResult === undefined) return checkKeyAndIp(req, res, headers, { window: ipWindow, id: subject, cost: 1 }, cost);
    return checkKey(req, res, headers, ipResult, cost);
  }

  /**
   * The check with a limiter that answers asynchronously (Redis): the IP's window is handed to the
   * verifier, which spends it with the key's windows in one call (consumeAll), or alone before
   * any store refresh. When the check ended before that (no key, a malformed or revoked one), the
   * IP's window is spent here.
   */
  async function checkKeyAndIp(
    req: Request,
    res: Response,
    headers: IncomingHttpHeaders,
    ip: ConsumeRequest,
    cost: number,
  ): Promise<Decision> {
    const lead: LeadWindow = { request: ip };
    const at = config.now();
    const result = await verifier.check(extractKey(req, config.queryParam, headers), { cost, now: at, defer: usageTracker.defers, lead });
    let ipResult = lead.result;
    if (!ipResult && result.code !== 'UNAVAILABLE') ipResult = await limiter.consume(ip.window, ip.id, ip.cost);
    if (ipResult && !ipResult.allowed) return ipLimited(req, res, headers, ipResult);
    return decide(req, res, ipResult, result, at);
  }

  function ipLimited(req: Request, res: Response, headers: IncomingHttpHeaders, ipResult: RateLimitResult): Decision {
    setRateLimitHeaders(res, ipResult, [], legacyAt());
    sendRateLimited(res, ipResult);
    if (recorder.history) void countIpLimited(extractKey(req, config.queryParam, headers));
    return IP_LIMITED;
  }

  function checkKey(
    req: Request,
    res: Response,
    headers: IncomingHttpHeaders,
    ipResult: RateLimitResult | undefined,
    cost: number,
  ): Decision | Promise<Decision> {
    if (ipResult && !ipResult.allowed) return ipLimited(req, res, headers, ipResult);
    const at = config.now();
    const result = verifier.check(extractKey(req, config.queryParam, headers), { cost, now: at, defer: usageTracker.defers });
    if (result instanceof Promise) return result.then((r) => decide(req, res, ipResult, r, at));
    return decide(req, res, ipResult, result, at);
  }

  function decide(req: Request, res: Response, ipResult: RateLimitResult | undefined, result: VerifyResult, at: number): Decision {
    setRateLimitHeaders(res, ipResult, result.limits, legacyAt());
    const decision: Decision = { outcome: outcomeOf(result.code), owner: result.record?.owner, keyHash: result.record?.key_hash };
    switch (result.code) {
      case 'VALID': {
        const record = result.record!;
        setRequestInfo(req, {
          keyPrefix: record.key_prefix,
          keyHash: record.key_hash,
          owner: record.owner,
          meta: record.meta ?? {},
          limits: result.limits,
          cost: result.cost,
          record,
          plan: result.plan ?? null,
          quota: result.quota
            ? { limit: result.quota.limit, remaining: result.quota.remaining, reset_seconds: resetSeconds(result.quota) }
            : null,
          credits: result.credits ?? null,
          scopes: record.scopes ?? [],
        });
        if (usageTracker.defers) usageTracker.track(req, res, result, ipResult, at);
        break;
      }
      default:
        if (result.code === 'MISSING') usageRouters.missingKey(req);
        sendRefusal(res, result);
    }
    return decision;
  }

  const listeners: RequestListener[] = alerts ? [rateLimitListener(alerts)] : [];
  function emit(started: number, decision: Decision): void {
    const event: RequestEvent = {
      outcome: decision.outcome,
      durationSeconds: (performance.now() - started) / 1000,
      owner: decision.owner,
      keyHash: decision.keyHash,
    };
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (err) {
        config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `a request listener threw: ${describeError(err)}`, { cause: err }));
      }
    }
  }
  const UNAVAILABLE: Decision = { outcome: 'store_unavailable', owner: undefined };

  function proceed(decision: Decision, next: NextFunction, started: number): void {
    if (listeners.length > 0) emit(started, decision);
    if (decision.outcome === 'allowed') next();
  }

  function fail(err: unknown, res: Response, started: number): void {
    if (listeners.length > 0) emit(started, UNAVAILABLE);
    config.onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `request refused with 503: ${describeError(err)}`, { cause: err }));
    if (!res.headersSent) sendUnavailable(res);
  }

  /** The middleware, at the `cost` option's units or `costOverride` (auth.cost(n) used alone). */
  function run(req: Request, res: Response, next: NextFunction, costOverride: number | undefined): void {
    const started = listeners.length > 0 ? performance.now() : 0;
    let decision: Decision | Promise<Decision> | undefined;
    try {
      // A request the skip option exempts goes on untouched (next() runs outside this try).
      if (config.skip === undefined || !config.skip(req, res)) {
        useHandler(req, res, next);
        decision = authenticate(req, res, costOverride ?? costOf(req));
      }
    } catch (err) {
      fail(err, res, started);
      return;
    }
    if (decision === undefined) return next();
    if (!(decision instanceof Promise)) return proceed(decision, next, started);
    decision
      .then(
        (d) => proceed(d, next, started),
        (err: unknown) => fail(err, res, started),
      )
      .catch(next);
  }

  /** The time of the legacy X-RateLimit-Reset, when the `legacyHeaders` option wants those fields. */
  function legacyAt(): number | undefined {
    return config.legacyHeaders ? config.now() : undefined;
  }

  /** Lets the `handler` option answer this request's refusal, when it is set. */
  function useHandler(req: Request, res: Response, next: NextFunction): void {
    if (config.handler) answerRefusalWith(res, customRefusal(req, res, next));
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
    check: (req, res, next) => {
      useHandler(req, res, next);
      return checkRequest(middleware, req, res, { peek: true, clientAddress: clientAddress(req, req.headers) });
    },
  });
  const middleware = ((req: Request, res: Response, next: NextFunction): void => {
    if (!usageRouters.serve(req, res, next, () => run(req, res, next, undefined))) run(req, res, next, undefined);
  }) as DaymindAuth;
  const usageTracker = new RequestUsageTracker({
    verifier,
    billable: config.billable,
    onError: config.onError,
    now: config.now,
    legacyHeaders: config.legacyHeaders,
    authenticate: (req, res, next, cost) => run(req, res, next, cost),
    emit: (outcome, owner) => {
      if (listeners.length > 0) emit(performance.now(), { outcome, owner });
    },
  });

  let closing: Promise<void> | undefined;
  Object.assign(middleware, {
    config,
    store,
    limiter,
    ready,
    usageRouter: (routerOptions?: UsageRouterOptions) => usageRouters.make(routerOptions),
    verify: (key: string | undefined, opts?: VerifyOptions) => verifier.verify(key, { ...opts, defer: false }),
    cost: (units: number) => usageTracker.cost(units),
    requireScope: (scope: string) => usageTracker.requireScope(scope),
    usage: (record: KeyRecord, nowMs = config.now()) => recorder.live(record, nowMs),
    flush: () => recorder.flush(),
    observe: (listener: RequestListener) => {
      listeners.push(listener);
      return () => {
        const at = listeners.indexOf(listener);
        if (at >= 0) listeners.splice(at, 1);
      };
    },
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
