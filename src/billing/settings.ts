import { setting, type DaymindOptions, type ResolvedConfig } from '../config';
import { ConfigError } from '../errors';
import { defaultLedgerDir, SETTINGS, STRIPE_KEY_REQUIRED } from '../settings';
import { JsonFileKeyStore } from '../store/json-file';

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
  const billing = setting(SETTINGS.billing, options.billing, env) ?? (keyStore === 'memory' ? false : 'local');
  let stripe: ResolvedConfig['stripe'];
  if (billing === 'stripe') {
    const secretKey = setting(SETTINGS.stripeSecretKey, options.stripeSecretKey ?? undefined, env);
    if (secretKey === undefined) throw new ConfigError(SETTINGS.stripeSecretKey.env!, STRIPE_KEY_REQUIRED);
    const apiBase = setting(SETTINGS.stripeApiBase, options.stripeApiBase ?? undefined, env);
    const meterEventName = setting(SETTINGS.stripeMeterEventName, options.stripeMeterEventName ?? undefined, env);
    stripe = { secretKey, meterEventName, apiBase };
  }
  const storeFile = keyStore === 'file' ? storePath : options.store instanceof JsonFileKeyStore ? options.store.path : undefined;
  return {
    billing,
    ledgerDir: setting(SETTINGS.ledgerDir, options.ledgerDir ?? undefined, env) ?? defaultLedgerDir(storeFile),
    billingIntervalMs: setting(SETTINGS.billingIntervalMs, options.billingIntervalMs, env),
    billingWindowSeconds: setting(SETTINGS.billingWindow, options.billingWindow, env),
    billingConcurrency: setting(SETTINGS.billingConcurrency, options.billingConcurrency, env),
    billingMaxCallsPerSecond: setting(SETTINGS.billingMaxCallsPerSecond, options.billingMaxCallsPerSecond, env),
    stripe,
  };
}
