import { setting } from '../config/config';
import type { DaymindOptions, ResolvedConfig } from '../config/options';
import { ConfigError } from '../errors';
import { SETTINGS } from '../config/settings';
import { defaultLedgerDir, PADDLE_REQUIRED, STRIPE_KEY_REQUIRED } from '../config/setting-values';
import { JsonFileKeyStore } from '../store/json/json-file-store';

type BillingSettings = Pick<
  ResolvedConfig,
  | 'billing'
  | 'ledgerDir'
  | 'billingIntervalMs'
  | 'billingWindowSeconds'
  | 'billingConcurrency'
  | 'billingMaxCallsPerSecond'
  | 'stripe'
  | 'paddle'
>;

/** Paddle's settings, checked. */
export interface PaddleSettings {
  apiKey: string;
  /** The usage price of keys whose plan names none. */
  priceId: string;
  environment: 'production' | 'sandbox';
  apiBase: string | undefined;
  recheckAfterMs: number;
}

/**
 * Paddle mode's defaults where BILLING_WINDOW and BILLING_MAX_CALLS_PER_SECOND are not set: a
 * charge is two API calls (the renewal's units, then the charge) and Paddle allows 240 requests a
 * minute per IP, so one charge a second keeps half of that free; hourly windows then bill up to
 * 3,600 keys (and prices) active in an hour.
 */
const PADDLE_WINDOW_SECONDS = 3600;
const PADDLE_CALLS_PER_SECOND = 1;

function resolvePaddle(options: DaymindOptions, env: Record<string, string | undefined>): PaddleSettings {
  const apiKey = setting(SETTINGS.paddleApiKey, options.paddleApiKey ?? undefined, env);
  if (apiKey === undefined) throw new ConfigError(SETTINGS.paddleApiKey.env!, PADDLE_REQUIRED);
  const priceId = setting(SETTINGS.paddlePriceId, options.paddlePriceId ?? undefined, env);
  if (priceId === undefined) throw new ConfigError(SETTINGS.paddlePriceId.env!, PADDLE_REQUIRED);
  return {
    apiKey,
    priceId,
    environment: setting(SETTINGS.paddleEnvironment, options.paddleEnvironment ?? undefined, env),
    apiBase: setting(SETTINGS.paddleApiBase, options.paddleApiBase ?? undefined, env),
    recheckAfterMs: setting(SETTINGS.paddleRecheckAfterMs, options.paddleRecheckAfterMs, env),
  };
}

/** Whether neither the option nor the variable sets a setting. */
const unset = (option: unknown, variable: string | undefined, env: Record<string, string | undefined>): boolean =>
  option === undefined && (variable === undefined || !env[variable]);

/** The billing options and variables, checked: a bad value is a ConfigError naming it. */
export function resolveBilling(
  options: DaymindOptions,
  env: Record<string, string | undefined>,
  keyStore: ResolvedConfig['keyStore'],
  storePath: string,
): BillingSettings {
  const billing = setting(SETTINGS.billing, options.billing, env) ?? (keyStore === 'memory' ? false : 'local');
  let stripe: ResolvedConfig['stripe'];
  if (billing === 'stripe') {
    const secretKey = setting(SETTINGS.stripeSecretKey, options.stripeSecretKey ?? undefined, env);
    if (secretKey === undefined) throw new ConfigError(SETTINGS.stripeSecretKey.env!, STRIPE_KEY_REQUIRED);
    const apiBase = setting(SETTINGS.stripeApiBase, options.stripeApiBase ?? undefined, env);
    const meterEventName = setting(SETTINGS.stripeMeterEventName, options.stripeMeterEventName ?? undefined, env);
    stripe = { secretKey, meterEventName, apiBase };
  }
  const paddle = billing === 'paddle' ? resolvePaddle(options, env) : undefined;
  const paddleDefault = <T>(value: T, fallback: T, option: unknown, variable: string | undefined): T =>
    paddle && unset(option, variable, env) ? fallback : value;
  const storeFile = keyStore === 'file' ? storePath : options.store instanceof JsonFileKeyStore ? options.store.path : undefined;
  return {
    billing,
    ledgerDir: setting(SETTINGS.ledgerDir, options.ledgerDir ?? undefined, env) ?? defaultLedgerDir(storeFile),
    billingIntervalMs: setting(SETTINGS.billingIntervalMs, options.billingIntervalMs, env),
    billingWindowSeconds: paddleDefault(
      setting(SETTINGS.billingWindow, options.billingWindow, env),
      PADDLE_WINDOW_SECONDS,
      options.billingWindow,
      SETTINGS.billingWindow.env,
    ),
    billingConcurrency: setting(SETTINGS.billingConcurrency, options.billingConcurrency, env),
    billingMaxCallsPerSecond: paddleDefault(
      setting(SETTINGS.billingMaxCallsPerSecond, options.billingMaxCallsPerSecond, env),
      PADDLE_CALLS_PER_SECOND,
      options.billingMaxCallsPerSecond,
      SETTINGS.billingMaxCallsPerSecond.env,
    ),
    stripe,
    paddle,
  };
}
