import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { DaymindError, describeError } from '../errors';
import { sendBadRequest, sendJsonError, sendUnavailable } from '../http/responses';
import type { KeyStore } from '../store/types';
import type { VerifyResult } from '../pipeline/verify-types';
import { DASHBOARD_CSP, dashboardAssets } from './page/dashboard';
import { isoDay, lastDays } from './history';
import type { UsageRecorder } from './recorder';
import { usageBody } from './usage-body';

export interface UsageRouterOptions {
  /**
   * Also serve the customer usage page at `GET /usage/dashboard` (and its script and style). The
   * page loads without a key; only its data calls carry one. Default false.
   */
  dashboard?: boolean;
}

export interface UsageRouterParts {
  store: KeyStore;
  recorder: UsageRecorder;
  /**
   * Checks the calling key without spending anything (`peek`: the per-IP limit applies, the key's
   * windows, quota and credits do not) and answers a refusal; resolves to the result (undefined
   * when the per-IP limit refused).
   */
  check(req: Request, res: Response, next: NextFunction): Promise<VerifyResult | undefined>;
  /** Reports (once) a request the middleware, mounted at another path, let through as any other. */
  misplaced(req: Request): void;
  now: () => number;
  onError: (err: Error) => void;
}

/** Days of history served by default, and at most. */
export const HISTORY_DEFAULT_DAYS = 30;
export const HISTORY_MAX_DAYS = 90;

/** `days` of `/usage/history`: a whole number from 1 to 90, default 30; undefined when invalid. */
export function parseHistoryDays(raw: unknown): number | undefined {
  if (raw === undefined) return HISTORY_DEFAULT_DAYS;
  if (typeof raw !== 'string' || !/^[0-9]{1,3}$/.test(raw)) return undefined;
  const days = Number(raw);
  return days >= 1 && days <= HISTORY_MAX_DAYS ? days : undefined;
}

/**
 * `GET /usage`: the calling key's record, live counters and where it stands against its limits;
 * `GET /usage/history`: its requests per UTC day; with `dashboard`, the usage page. The data
 * routes check the key themselves and spend nothing: they are not usage, and answer while the key
 * is rate-limited or out of quota. Mounted before the auth middleware, or after it at the same
 * path (the middleware then hands these routes over untouched).
 */
export function createUsageRouter(parts: UsageRouterParts, options: UsageRouterOptions = {}): Router {
  const { store, recorder, now, onError } = parts;
  /** The calling key, checked without spending; undefined once a refusal was answered. */
  const caller = async (req: Request, res: Response, next: NextFunction): Promise<VerifyResult | undefined> => {
    // Let through by the middleware as any request (so counted): it is mounted at another path.
    if (req.daymind) parts.misplaced(req);
    const result = await parts.check(req, res, next);
    return result?.valid ? result : undefined;
  };
  /** A store or history that fails answers 503 with a JSON body, reported through onError. */
  const unavailable = (res: Response, what: string, err: unknown): void => {
    onError(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `${what} failed: ${describeError(err)}`, { cause: err }));
    if (!res.headersSent) sendUnavailable(res);
  };
  const router = Router();
  if (options.dashboard) {
    const assets = dashboardAssets();
    const serve =
      (body: string, type: string): RequestHandler =>
      (_req, res) => {
        res.setHeader('Content-Type', type);
        res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.setHeader('Referrer-Policy', 'no-referrer');
        res.setHeader('X-Frame-Options', 'DENY');
        res.setHeader('Cache-Control', 'no-cache');
        res.end(body);
      };
    const page = serve(assets.html, 'text/html; charset=utf-8');
    router.get('/usage/dashboard', (req, res, next) => {
      // The page's URLs are relative: with a trailing slash they would point one level too deep.
      if (req.path.endsWith('/')) res.redirect(301, '../dashboard');
      else page(req, res, next);
    });
    router.get('/usage/dashboard.js', serve(assets.script, 'text/javascript; charset=utf-8'));
    router.get('/usage/dashboard.css', serve(assets.css, 'text/css; charset=utf-8'));
  }
  router.get('/usage', async (req, res, next) => {
    try {
      const key = await caller(req, res, next);
      if (!key) return;
      const hash = key.record!.key_hash;
      const record = (await (store.fetch ? store.fetch(hash) : store.get(hash))) ?? key.record!;
      const live = recorder.live(record, now());
      res.setHeader('Cache-Control', 'no-store');
      res.json(usageBody(record, live, key));
    } catch (err) {
      unavailable(res, 'GET /usage', err);
    }
  });
  router.get('/usage/history', async (req, res, next) => {
    try {
      const key = await caller(req, res, next);
      if (!key) return;
      const count = parseHistoryDays(req.query.days);
      if (count === undefined) {
        sendBadRequest(res, `days must be a whole number from 1 to ${HISTORY_MAX_DAYS} (default ${HISTORY_DEFAULT_DAYS})`);
        return;
      }
      const history = recorder.history;
      if (!history) {
        sendJsonError(res, 501, 'history_unavailable', 'This server keeps no per-day usage history.');
        return;
      }
      const keyHash = key.record!.key_hash;
      const days = lastDays(now(), count);
      const counts = await recorder.readHistory(
        () => history.read(keyHash, days),
        (stored) =>
          stored.map((c, i) => {
            const unwritten = recorder.unwrittenHistory(keyHash, days[i]!);
            return { allowed: c.allowed + unwritten.allowed, rate_limited: c.rate_limited + unwritten.rate_limited };
          }),
      );
      res.setHeader('Cache-Control', 'no-store');
      res.json({ days: days.map((day, i) => ({ day: isoDay(day), ...counts[i]! })) });
    } catch (err) {
      unavailable(res, 'GET /usage/history', err);
    }
  });
  return router;
}
