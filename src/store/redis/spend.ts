import type { IORedisClient } from '../../redis/connection';
import { healthOf, type RedisHealth } from '../../redis/health';
import { creditsPeriod, utcMonth } from '../record';
import type { SpendRequest, SpendResult } from '../types';
import { corkWritesForThisTurn } from '../../redis/cork-writes';

/**
 * Spends a request's units from the monthly quota and the prepaid credits of a key, both or
 * neither, in one step (so several instances never overshoot either).
 * KEYS: record hash, quota counter of the month. ARGV: units, quota (-1: none), month (YYYYMM),
 * day (YYYYMMDD), quota counter TTL.
 * Returns { status (1 ok, -1 quota, -2 credits), month used, credits (-1: not prepaid) }.
 */
const SPEND = `
local units = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local used = 0
if quota >= 0 then
  local counter = redis.call('GET', KEYS[2])
  if counter then
    used = tonumber(counter)
  elseif redis.call('HGET', KEYS[1], 'requests_month') == ARGV[3] then
    used = tonumber(redis.call('HGET', KEYS[1], 'requests_this_month') or '0') or 0
  end
  if used + units > quota then return {-1, used, -1} end
end
local credits = redis.call('HGET', KEYS[1], 'credits')
if credits then
  credits = tonumber(credits)
  local interval = redis.call('HGET', KEYS[1], 'credits_refill_interval')
  if interval then
    local period = interval == 'daily' and ARGV[4] or ARGV[3]
    if redis.call('HGET', KEYS[1], 'credits_period') ~= period then
      credits = tonumber(redis.call('HGET', KEYS[1], 'credits_refill_amount') or '0')
      redis.call('HSET', KEYS[1], 'credits', credits, 'credits_period', period)
    end
  end
  if credits < units then return {-2, used, credits} end
  credits = redis.call('HINCRBY', KEYS[1], 'credits', 0 - units)
else
  credits = -1
end
if quota >= 0 then
  used = used + units
  redis.call('SET', KEYS[2], used, 'EX', ARGV[5])
end
return {1, used, credits}
`;

/** Gives back what SPEND took. KEYS: record, quota counter. ARGV: units, quota spent (1/0), credits spent (1/0). */
const REFUND = `
local units = tonumber(ARGV[1])
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], units) end
if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[1], 'credits') == 1 then redis.call('HINCRBY', KEYS[1], 'credits', units) end
return 1
`;

type Commands = IORedisClient & {
  daymindSpend(...args: Array<string | number>): Promise<[number, number, number]>;
  daymindRefund(...args: Array<string | number>): Promise<number>;
};

/** Quota counters outlive their month by a few days, then go. */
const QUOTA_TTL_SECONDS = 40 * 86_400;

/**
 * Quota and credits spending on Redis, for RedisKeyStore. While the client's health says Redis is
 * down, a spend rejects at once: nothing can be spent safely without the shared counters, and a
 * request must not wait for a timeout that the limiter (or an earlier request) has already met.
 */
export class RedisSpender {
  private readonly client: Commands;
  private readonly health: RedisHealth;

  constructor(
    client: IORedisClient,
    private readonly recordKey: (hash: string) => string,
    private readonly quotaKey: (hash: string, month: number) => string,
  ) {
    this.client = client as Commands;
    this.health = healthOf(client);
    if (typeof this.client.daymindSpend !== 'function') {
      this.client.defineCommand('daymindSpend', { numberOfKeys: 2, lua: SPEND });
      this.client.defineCommand('daymindRefund', { numberOfKeys: 2, lua: REFUND });
    }
  }

  async spend(hash: string, request: SpendRequest): Promise<SpendResult> {
    const month = utcMonth(request.nowMs);
    const [status, monthUsed, credits] = await this.health.run(() => {
      corkWritesForThisTurn(this.client);
      return this.client.daymindSpend(
        this.recordKey(hash),
        this.quotaKey(hash, month),
        request.units,
        request.monthlyQuota ?? -1,
        month,
        creditsPeriod('daily', request.nowMs),
        QUOTA_TTL_SECONDS,
      );
    });
    return {
      outcome: status === 1 ? 'spent' : status === -1 ? 'quota_exceeded' : 'credits_exhausted',
      monthUsed,
      credits: credits < 0 ? undefined : credits,
    };
  }

  async refund(hash: string, request: SpendRequest, spent: SpendResult): Promise<void> {
    if (spent.outcome !== 'spent') return;
    await this.health.run(() =>
      this.client.daymindRefund(
        this.recordKey(hash),
        this.quotaKey(hash, utcMonth(request.nowMs)),
        request.units,
        request.monthlyQuota != null ? 1 : 0,
        spent.credits !== undefined ? 1 : 0,
      ),
    );
  }
}
