import { setting } from '../config/config';
import type { DaymindOptions } from '../config/options';
import { ConfigError } from '../errors';
import { readSetting, SETTINGS } from '../config/settings';
import { WEBHOOK_SECRET_FORM } from '../config/setting-values';
import type { AlertThresholds, WebhookEndpoint } from './types';

/** The alerts as configured; undefined when they are off. */
export interface AlertSettings extends AlertThresholds {
  /** Webhook receivers (none: alerts reach listeners and metrics only). */
  webhooks: WebhookEndpoint[];
  /** How often keys are checked and the outbox delivered, in ms. */
  intervalMs: number;
}

/** The alert options and variables, checked: a bad value is a ConfigError naming it. */
export function resolveAlerts(options: DaymindOptions, env: Record<string, string | undefined>): AlertSettings | undefined {
  const fail = (name: string, message: string) => new ConfigError(name, message);
  const hooks = readSetting(SETTINGS.webhooks, options.webhooks, env, fail);
  const on = setting(SETTINGS.alerts, options.alerts, env) ?? hooks.value !== undefined;
  const thresholds = {
    quotaPercents: setting(SETTINGS.alertQuotaPercents, options.alertQuotaPercents, env),
    creditsBelow: setting(SETTINGS.alertCreditsBelow, options.alertCreditsBelow, env),
    expiringDays: setting(SETTINGS.alertExpiringDays, options.alertExpiringDays, env),
    intervalMs: setting(SETTINGS.alertIntervalMs, options.alertIntervalMs, env),
  };
  if (!on) return undefined;
  let webhooks: WebhookEndpoint[] = [];
  if (hooks.value) {
    const secretName = options.webhooks !== undefined ? SETTINGS.webhookSecret.option : SETTINGS.webhookSecret.env!;
    const shared = readSetting(SETTINGS.webhookSecret, options.webhookSecret, env, fail).value;
    webhooks = hooks.value.map(({ url, secret }) => {
      const key = secret ?? shared;
      if (key === undefined) throw new ConfigError(secretName, `is required with ${hooks.name} (${url}): it ${WEBHOOK_SECRET_FORM}`);
      return { url, secret: key };
    });
  }
  return { webhooks, ...thresholds };
}
