import { randomBytes } from 'node:crypto';
import { clearInterval, setInterval } from 'node:timers';
import type { RedisClientLike } from '../redis/types';
import type { AlertEvent, AlertLog, PendingAlert } from './types';

/** How long a claim is kept: longer than any period an alert can be detected in again. */
const CLAIM_TTL_SECONDS = 400 * 86_400;
/** How long a deliverer holds the delivery lease without renewing it (renewed every third of it). */
const LEASE_MS = 10_000;

/** SET NX of the claim and HSET into the outbox in one step: claimed means in the outbox. */
const CLAIM = `
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  return 1
end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
/** Marks a delivery; when every receiver has the alert, it leaves the outbox with its marks. KEYS: delivered, outbox. ARGV: id, url, urls... */
const DELIVERED = `
redis.call('HSET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], '1')
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[1] .. ' ' .. ARGV[i]) == 0 then return 0 end
end
redis.call('HDEL', KEYS[2], ARGV[1])
for i = 3, #ARGV do redis.call('HDEL', KEYS[1], ARGV[1] .. ' ' .. ARGV[i]) end
return 1`;

interface Commands {
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<string | null>;
  hgetall(key: string): Promise<Record<string, string>>;
  hset(key: string, field: string, value: string): Promise<number>;
  hdel(key: string, ...fields: string[]): Promise<number>;
}

/**
 * Alerts claimed in the key store's Redis (same prefix, one hash slot): `:alerts:claim:<id>` is
 * set with NX, and in the same script the alert goes into the `:alerts:outbox` hash; deliveries
 * are fields `<id> <url>` of `:alerts:delivered`, and an alert delivered to every receiver leaves
 * the outbox. One process delivers at a time (`:alerts:delivering`, a lease of 10 s renewed while it delivers:
 * one left by a killed process lapses within 10 s).
 */
export class RedisAlertLog implements AlertLog {
  private readonly client: Commands;
  private readonly ns: string;

  constructor(client: RedisClientLike, prefix: string) {
    this.client = client as unknown as Commands;
    this.ns = `{${prefix}}:alerts`;
  }

  async claim(events: AlertEvent[]): Promise<AlertEvent[]> {
    const fresh: AlertEvent[] = [];
    const seen = new Set<string>();
    for (const event of events) {
      if (seen.has(event.id)) continue;
      seen.add(event.id);
      const won = await this.client.eval(
        CLAIM,
        2,
        `${this.ns}:claim:${event.id}`,
        `${this.ns}:outbox`,
        CLAIM_TTL_SECONDS,
        event.id,
        JSON.stringify(event),
      );
      if (Number(won) === 1) fresh.push(event);
    }
    return fresh;
  }

  async pending(urls: readonly string[]): Promise<PendingAlert[]> {
    const outbox = await this.client.hgetall(`${this.ns}:outbox`);
    const delivered = await this.client.hgetall(`${this.ns}:delivered`);
    const pending: PendingAlert[] = [];
    const done: string[] = [];
    for (const [id, json] of Object.entries(outbox)) {
      const deliveredTo = new Set(urls.filter((url) => delivered[`${id} ${url}`] !== undefined));
      if (deliveredTo.size === urls.length && urls.length > 0) done.push(id);
      else pending.push({ event: JSON.parse(json) as AlertEvent, deliveredTo });
    }
    if (done.length > 0) {
      await this.client.hdel(`${this.ns}:outbox`, ...done);
      const fields = Object.keys(delivered).filter((f) => done.includes(f.slice(0, f.indexOf(' '))));
      if (fields.length > 0) await this.client.hdel(`${this.ns}:delivered`, ...fields);
    }
    return pending.sort((a, b) => (a.event.timestamp < b.event.timestamp ? -1 : a.event.timestamp > b.event.timestamp ? 1 : 0));
  }

  async delivered(ids: string[], url: string, urls: readonly string[]): Promise<void> {
    for (const id of ids) await this.client.eval(DELIVERED, 2, `${this.ns}:delivered`, `${this.ns}:outbox`, id, url, ...urls);
  }

  async whileDelivering<T>(run: () => Promise<T>): Promise<T | undefined> {
    const token = randomBytes(8).toString('hex');
    const lease = `${this.ns}:delivering`;
    if ((await this.client.set(lease, token, 'PX', LEASE_MS, 'NX')) !== 'OK') return undefined;
    const renew = setInterval(() => void this.client.eval(RENEW, 1, lease, token, LEASE_MS).catch(() => undefined), LEASE_MS / 3);
    renew.unref();
    try {
      return await run();
    } finally {
      clearInterval(renew);
      await this.client.eval(RELEASE, 1, lease, token).catch(() => undefined);
    }
  }

  /** Nothing to do: claims expire by themselves, and delivered alerts leave the outbox. */
  async tidy(): Promise<void> {}

  async close(): Promise<void> {}
}
