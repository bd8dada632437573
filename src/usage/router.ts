import { Router, type RequestHandler } from 'express';
import { resetSeconds } from '../ratelimit/headers';
import type { KeyStore } from '../store/types';
import type { UsageRecorder } from './recorder';

export interface UsageRouterParts {
  store: KeyStore;
  recorder: UsageRecorder;
  /** Runs the auth middleware unless the request already went through it. */
  ensureAuthenticated: RequestHandler;
}

/**
 * `GET /usage`: the calling key's record and live counters (this request included) and its
 * rate-limit state. Works mounted behind the auth middleware or on its own.
 */
export function createUsageRouter({ store, recorder, ensureAuthenticated }: UsageRouterParts): Router {
  const router = Router();
  router.get('/usage', ensureAuthenticated, async (req, res, next) => {
    try {
      const info = req.daymind!;
      const record = (await (store.fetch ? store.fetch(info.keyHash) : store.get(info.keyHash))) ?? info.record;
      const live = recorder.live(record, Date.now());
      res.setHeader('Cache-Control', 'no-store');
      res.json({
        key_prefix: record.key_prefix,
        owner: record.owner,
        created_at: record.created_at,
        usage_count: live.usage_count,
        requests_today: live.requests_today,
        requests_day: live.requests_day,
        last_used: live.last_used,
        revoked: record.revoked,
        expires_at: record.expires_at ?? null,
        revoke_at: record.revoke_at ?? null,
        rate_limits: info.limits.map((l) => ({
          policy: l.policy,
          limit: l.limit,
          remaining: l.remaining,
          reset_seconds: resetSeconds(l),
          window_seconds: l.windowSeconds,
        })),
      });
    } catch (err) {
      next(err);
    }
  });
  return router;
}
