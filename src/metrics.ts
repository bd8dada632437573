import type { RequestHandler } from 'express';
import type { Counter, Registry } from 'prom-client';
import { ConfigError, DaymindError, describeError } from './errors';
import type { DaymindAuth } from './http/middleware';
import { REQUEST_OUTCOMES, type DaymindStats, type RequestOutcome } from './http/observe';
import { OnceReporter } from './internal/report-once';
import { loadPeer } from './internal/peer';
import { sendJsonError } from './http/responses';

/**
 * The parts of a prom-client `Registry` used here. Declared structurally so that the published
 * types do not need prom-client, an optional peer dependency; any prom-client Registry fits.
 */
export interface MetricsRegistry {
  readonly contentType: string;
  metrics(): Promise<string>;
  getSingleMetric(name: string): unknown;
  registerMetric(metric: never): void;
}

export interface MetricsHandlerOptions {
  /**
   * A prom-client Registry of the app's own: the metrics are registered there and the handler
   * serves the whole registry, the app's metrics included. Default: a registry of this
   * daymindAuth() instance's own, holding only its metrics.
   */
  registry?: MetricsRegistry;
  /** Adds an `owner` label to `requests_total` (one series per owner and outcome). Default `false`. */
  ownerLabel?: boolean;
  /** Prefix of every metric name. Default `daymind_`. */
  prefix?: string;
  /** Buckets of the request duration histogram, in seconds. Default 0.1 ms to 1 s. */
  buckets?: number[];
  /** Also registers prom-client's default process metrics (CPU, memory, event loop). Default `false`. */
  collectDefaultMetrics?: boolean;
}

/** The middleware decides in well under a millisecond from memory, in milliseconds with Redis. */
const DEFAULT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

type PromClient = typeof import('prom-client');

/** Loads the optional peer dependency prom-client, or says how to install it. */
function loadPromClient(): PromClient {
  return loadPeer(
    'prom-client',
    (cause) =>
      `metricsHandler() needs the optional peer dependency "prom-client", which cannot be loaded (${cause}); install it: npm install prom-client`,
  );
}

interface Settings {
  prefix: string;
  ownerLabel: boolean;
  buckets: number[];
  collectDefaultMetrics: boolean;
}

/** Checks the options when the handler is created, never at scrape time. */
function settingsOf(options: MetricsHandlerOptions): Settings {
  const { registry, prefix = 'daymind_', ownerLabel = false, buckets = DEFAULT_BUCKETS, collectDefaultMetrics = false } = options;
  if (registry !== undefined) {
    const r = registry as Partial<Record<keyof MetricsRegistry, unknown>> | null;
    if (typeof r?.metrics !== 'function' || typeof r.getSingleMetric !== 'function' || typeof r.registerMetric !== 'function')
      throw new ConfigError('registry', 'must be a prom-client Registry');
  }
  if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix))
    throw new ConfigError(
      'prefix',
      `must be a metric name prefix (letters, digits, _ and :, not starting with a digit), got ${JSON.stringify(prefix)}`,
    );
  if (typeof ownerLabel !== 'boolean') throw new ConfigError('ownerLabel', `must be true or false, got ${JSON.stringify(ownerLabel)}`);
  if (typeof collectDefaultMetrics !== 'boolean')
    throw new ConfigError('collectDefaultMetrics', `must be true or false, got ${JSON.stringify(collectDefaultMetrics)}`);
  const increasing = Array.isArray(buckets) && buckets.every((b, i) => Number.isFinite(b) && b > 0 && (i === 0 || b > buckets[i - 1]!));
  if (!increasing || buckets.length === 0)
    throw new ConfigError('buckets', `must be positive numbers of seconds in increasing order, got ${JSON.stringify(buckets)}`);
  return { prefix, ownerLabel, buckets: [...buckets], collectDefaultMetrics };
}

/** The metrics of one daymindAuth() instance in one registry, under one prefix. */
interface Installed {
  auth: DaymindAuth;
  settings: string;
  requests: Counter;
  handler: RequestHandler;
  unsubscribe: () => void;
}

const installed = new WeakMap<MetricsRegistry, Map<string, Installed>>();
const ownRegistries = new WeakMap<DaymindAuth, MetricsRegistry>();

/** One stats() call per scrape, shared by the gauges collected together; undefined when it failed. */
function statsPerScrape(auth: DaymindAuth): () => Promise<DaymindStats | undefined> {
  const failures = new OnceReporter(auth.config.onError);
  let current: Promise<DaymindStats | undefined> | undefined;
  return () =>
    (current ??= auth
      .stats()
      .then(
        (stats) => {
          failures.clear();
          return stats;
        },
        (err: unknown) => {
          const message = `metrics: the state of daymind-auth could not be read, gauges show NaN: ${describeError(err)}`;
          failures.report(new DaymindError('ERR_DAYMIND_UNAVAILABLE', message, { cause: err }));
          return undefined;
        },
      )
      .finally(() => {
        current = undefined;
      }));
}

/** Outcomes decided before a key is found: their requests have no owner. */
const KEYLESS_OUTCOMES: ReadonlySet<RequestOutcome> = new Set([
  'missing_api_key',
  'invalid_api_key',
  'ip_rate_limited',
  'store_unavailable',
]);

function register(prom: PromClient, registry: Registry, auth: DaymindAuth, settings: Settings): Omit<Installed, 'handler'> {
  const p = settings.prefix;
  const registers = [registry];
  const stats = statsPerScrape(auth);
  const startedAt = auth.config.now() / 1000;
  const gauge = (name: string, help: string, read: (s: DaymindStats) => number | null) =>
    new prom.Gauge({
      name: p + name,
      help,
      registers,
      async collect() {
        const s = await stats();
        this.set(s ? (read(s) ?? NaN) : NaN);
      },
    });

  const requests = new prom.Counter({
    name: `${p}requests_total`,
    help: 'Requests the daymind-auth middleware decided, by outcome.',
    labelNames: settings.ownerLabel ? ['outcome', 'owner'] : ['outcome'],
    registers,
  });
  // Every outcome exists from the start, so that rate() sees its first request. With the owner
  // label, only the outcomes decided before a key is known have a series without an owner (owner="");
  // the others start at their first request, under their owner.
  for (const outcome of REQUEST_OUTCOMES) {
    if (!settings.ownerLabel) requests.inc({ outcome }, 0);
    else if (KEYLESS_OUTCOMES.has(outcome)) requests.inc({ outcome, owner: '' }, 0);
  }
  const duration = new prom.Histogram({
    name: `${p}request_duration_seconds`,
    help: 'Time the daymind-auth middleware took to decide a request (key check and rate limits), by outcome.',
    labelNames: ['outcome'],
    buckets: settings.buckets,
    registers,
  });

  if (auth.store.size) gauge('keys_loaded', 'Keys the key store holds in memory.', (s) => s.keysLoaded);
  gauge(
    'usage_flush_duration_seconds',
    'Duration of the last successful usage flush (NaN before the first).',
    (s) => s.lastFlushDurationSeconds,
  );
  gauge(
    'usage_flush_age_seconds',
    'Seconds since the last successful usage flush (before the first: since the metrics started). Flushes happen only when there is usage to write.',
    (s) => auth.config.now() / 1000 - (s.lastFlushAt ?? startedAt),
  );
  new prom.Counter({
    name: `${p}usage_flush_errors_total`,
    help: 'Usage flushes that failed (the usage is kept and written by a later flush).',
    registers,
    async collect() {
      const s = await stats();
      if (!s) return;
      this.reset();
      this.inc(s.flushErrors);
    },
  });
  gauge(
    'usage_unflushed_units',
    'Usage units counted and not yet written to the store (kept in memory while flushes fail).',
    (s) => s.unflushedUnits,
  );
  if (auth.config.billing !== false) {
    gauge(
      'billing_outbox_depth',
      'Usage reports in the billing outbox waiting for the billing provider, with one for each key and billing window not closed yet.',
      (s) => s.billingOutboxDepth,
    );
    gauge(
      'billing_oldest_pending_seconds',
      'Age of the oldest usage in a report waiting for the billing provider (0 when none waits): how far delivery lags.',
      (s) => s.billingOldestPendingSeconds ?? 0,
    );
    gauge('billing_outbox_bytes', 'Size of the billing outbox file.', (s) => s.billingOutboxBytes);
  }
  if (auth.config.alerts) {
    const counter = (name: string, help: string, read: (s: DaymindStats) => number | null) =>
      new prom.Counter({
        name: p + name,
        help,
        registers,
        async collect() {
          const s = await stats();
          if (!s) return;
          this.reset();
          this.inc(read(s) ?? 0);
        },
      });
    counter(
      'alert_events_emitted_total',
      'Usage alerts this process detected first and claimed (each alert is claimed once).',
      (s) => s.alertsEmitted,
    );
    counter('alert_webhooks_delivered_total', 'Webhook deliveries of usage alerts that a receiver took (2xx).', (s) => s.alertsDelivered);
    counter(
      'alert_webhooks_failed_total',
      'Webhook deliveries of usage alerts that failed; the alert stays in the outbox and is retried.',
      (s) => s.alertsFailed,
    );
  }
  if (auth.config.redis !== undefined)
    gauge('redis_connected', 'Whether the Redis connection is ready (1) or not (0).', (s) =>
      s.redisConnected === null ? null : Number(s.redisConnected),
    );

  if (settings.collectDefaultMetrics && !registry.getSingleMetric('process_cpu_user_seconds_total'))
    prom.collectDefaultMetrics({ register: registry });

  const unsubscribe = auth.observe(({ outcome, durationSeconds, owner }) => {
    requests.inc(settings.ownerLabel ? { outcome, owner: owner ?? '' } : { outcome });
    duration.observe({ outcome }, durationSeconds);
  });
  return { auth, settings: JSON.stringify(settings), requests, unsubscribe };
}

const METRIC_NAMES = [
  'requests_total',
  'request_duration_seconds',
  'keys_loaded',
  'usage_flush_duration_seconds',
  'usage_flush_age_seconds',
  'usage_flush_errors_total',
  'usage_unflushed_units',
  'billing_outbox_depth',
  'billing_oldest_pending_seconds',
  'billing_outbox_bytes',
  'redis_connected',
  'alert_events_emitted_total',
  'alert_webhooks_delivered_total',
  'alert_webhooks_failed_total',
];

/**
 * An Express handler serving Prometheus metrics of `auth`: requests by outcome, the time the
 * middleware takes, keys loaded, usage flushes, the billing outbox (depth, oldest pending report, size)
 * and Redis connection state.
 * Mount it outside the routes that need a key: `app.get('/metrics', metricsHandler(auth))`.
 *
 * Needs the optional peer dependency prom-client; without it this throws
 * `ERR_DAYMIND_MISSING_PEER`. Called again for the same instance and registry it returns the same
 * handler (with other options, or for another instance under the same prefix, it throws).
 */
export function metricsHandler(auth: DaymindAuth, options: MetricsHandlerOptions = {}): RequestHandler {
  const settings = settingsOf(options);
  const prom = loadPromClient();
  let registry = options.registry ?? ownRegistries.get(auth);
  if (!registry) ownRegistries.set(auth, (registry = new prom.Registry()));

  const byPrefix = installed.get(registry) ?? new Map<string, Installed>();
  installed.set(registry, byPrefix);
  const previous = byPrefix.get(settings.prefix);
  if (previous && registry.getSingleMetric(`${settings.prefix}requests_total`) === previous.requests) {
    if (previous.auth !== auth)
      throw new ConfigError(
        'prefix',
        `this registry already holds the metrics of another daymindAuth() instance under "${settings.prefix}"; give each its own prefix`,
      );
    if (previous.settings !== JSON.stringify(settings))
      throw new ConfigError(
        'metricsHandler',
        'this registry already holds the metrics of this daymindAuth() instance, made with other options',
      );
    return previous.handler;
  }
  previous?.unsubscribe(); // the registry was cleared since
  const taken = METRIC_NAMES.map((name) => settings.prefix + name).filter((name) => registry.getSingleMetric(name));
  if (taken.length > 0)
    throw new ConfigError('prefix', `the registry already has metrics named ${taken.join(', ')}; choose another prefix`);

  const target = registry;
  const failures = new OnceReporter(auth.config.onError);
  const handler: RequestHandler = (_req, res) => {
    target.metrics().then(
      (body) => {
        failures.clear();
        res.set('Content-Type', target.contentType);
        res.send(body);
      },
      (err: unknown) => {
        const message = `metrics: the registry could not be collected: ${describeError(err)}`;
        failures.report(new DaymindError('ERR_DAYMIND_UNAVAILABLE', message, { cause: err }));
        if (!res.headersSent) sendJsonError(res, 500, 'internal_server_error', 'The metrics could not be collected.');
      },
    );
  };
  byPrefix.set(settings.prefix, { ...register(prom, target as unknown as Registry, auth, settings), handler });
  return handler;
}
