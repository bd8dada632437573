import { dirname } from 'node:path';
import { fromEnvOrOption, positiveInteger, type DaymindOptions, type ResolvedConfig } from '../config';
import { ConfigError } from '../errors';
import { JsonFileKeyStore } from '../store/json-file';
import { windowSeconds } from './windows';

type BillingSettings = Pick<
  ResolvedConfig,
  'billing' | 'ledgerDir' | 'billingIntervalMs' | 'billingWindowSeconds' | 'billingConcurrency' | 'billingMaxCallsPerSecond' | 'stripe'
>;

/** The billing options and variables, checked: a bad value is a ConfigError naming it. */
export function resolveBilling(
  options: DaymindOptions,
  env: Record<string, string | undefined>,
  keyStore: ResolvedConfig['keyStore'],
  storePath: string,
): BillingSettings {
  let billing: ResolvedConfig['billing'];
  if (options.billing !== undefined) {
    const b = options.billing;
    if (b !== false && b !== 'local' && b !== 'stripe' && (typeof b !== 'object' || b === null || typeof b.deliver !== 'function')) {
      throw new ConfigError('billing', 'must be "local", "stripe", false or an object with a deliver(report) method');
    }
    billing = b;
  } else {
    const mode = env.BILLING_MODE || undefined;
    if (mode !== undefined && mode !== 'local' && mode !== 'stripe' && mode !== 'off') {
      throw new ConfigError('BILLING_MODE', `must be "local", "stripe" or "off", got ${JSON.stringify(mode)}`);
    }
    billing = mode === 'off' ? false : ((mode ?? (keyStore === 'memory' ? false : 'local')) as 'local' | 'stripe' | false);
  }
  let stripe: ResolvedConfig['stripe'];
  if (billing === 'stripe') {
    const secretKey = options.stripeSecretKey ?? env.STRIPE_SECRET_KEY;
    if (!secretKey) {
      throw new ConfigError(
        options.stripeSecretKey !== undefined ? 'stripeSecretKey' : 'STRIPE_SECRET_KEY',
        'is required when BILLING_MODE is "stripe"',
      );
    }
    const apiBase = options.stripeApiBase ?? (env.STRIPE_API_BASE || undefined);
    if (apiBase !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(apiBase)) {
      throw new ConfigError(
        options.stripeApiBase !== undefined ? 'stripeApiBase' : 'STRIPE_API_BASE',
        `must be an http(s)://host[:port] URL, got ${JSON.stringify(apiBase)}`,
      );
    }
    const meterEventName = options.stripeMeterEventName ?? (env.STRIPE_METER_EVENT_NAME || 'api_requests');
    if (!/^\S{1,100}$/.test(meterEventName)) {
      throw new ConfigError(
        options.stripeMeterEventName !== undefined ? 'stripeMeterEventName' : 'STRIPE_METER_EVENT_NAME',
        'must be 1 to 100 characters without spaces',
      );
    }
    stripe = { secretKey, meterEventName, apiBase };
  }
  const storeDir =
    keyStore === 'file' ? dirname(storePath) : options.store instanceof JsonFileKeyStore ? dirname(options.store.path) : 'data';
  const ledgerDir = options.ledgerDir ?? (env.DAYMIND_LEDGER_DIR || undefined) ?? storeDir;
  if (typeof ledgerDir !== 'string' || ledgerDir.trim() === '') {
    throw new ConfigError(options.ledgerDir !== undefined ? 'ledgerDir' : 'DAYMIND_LEDGER_DIR', 'must be a directory path');
  }
  return {
    billing,
    ledgerDir,
    billingIntervalMs:
      options.billingIntervalMs === undefined ? 1000 : positiveInteger('billingIntervalMs', options.billingIntervalMs, 3_600_000),
    billingWindowSeconds: fromEnvOrOption<number | string>(
      options.billingWindow,
      'billingWindow',
      env,
      'BILLING_WINDOW',
      (name, value) => {
        const seconds = windowSeconds(value);
        if (typeof seconds === 'string') throw new ConfigError(name, seconds);
        return seconds;
      },
      60,
    ) as number,
    billingConcurrency: fromEnvOrOption(
      options.billingConcurrency,
      'billingConcurrency',
      env,
      'BILLING_CONCURRENCY',
      (name, value) => positiveInteger(name, value, 1000),
      32,
    ),
    billingMaxCallsPerSecond: fromEnvOrOption(
      options.billingMaxCallsPerSecond,
      'billingMaxCallsPerSecond',
      env,
      'BILLING_MAX_CALLS_PER_SECOND',
      (name, value) => positiveInteger(name, value, 100_000),
      250,
    ),
    stripe,
  };
}
