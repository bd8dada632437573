import type { NextFunction, Request, Response, Router } from 'express';
import { ConfigError } from '../errors';
import { OnceReporter } from '../internal/report-once';
import { createUsageRouter, type UsageRouterOptions, type UsageRouterParts } from './router';

/** The data routes of a usage router, under its mount point (Express matches them case-insensitively, with or without a final slash). */
const DATA_ROUTE = /^\/usage(?:\/history)?\/?$/i;
/** Its page, script and style. */
const PAGE_ROUTE = /^\/usage\/dashboard(?:\.js|\.css)?\/?$/i;
/** The page's routes under any mount point. */
const PAGE_ANYWHERE = /\/usage\/dashboard(?:\.js|\.css)?\/?$/i;

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The usage routers made by one daymindAuth(). The middleware hands them the requests for their
 * routes under its own mount point, untouched: they check the key themselves and spend nothing,
 * and their page needs no key. So a router mounted after the middleware at the same path
 * (`app.use('/v1', auth, auth.usageRouter())`) works as one mounted before it. A router mounted
 * after the middleware at another path cannot be found this way; that is reported once.
 */
export class UsageRouters {
  private readonly routers: Router[] = [];
  private page = false;
  private readonly misplaced: OnceReporter;

  constructor(private readonly parts: Omit<UsageRouterParts, 'misplaced'>) {
    this.misplaced = new OnceReporter(parts.onError);
  }

  /** A new usage router (`auth.usageRouter()`). */
  make(options: UsageRouterOptions = {}): Router {
    const router = createUsageRouter({ ...this.parts, misplaced: (req) => this.report(req) }, options);
    this.routers.push(router);
    if (options.dashboard) this.page = true;
    return router;
  }

  /**
   * Serves `req` with the usage routers when it is for one of their routes (`fallthrough` when
   * none of them takes it after all); false when it is not, to be checked as any request.
   */
  serve(req: Request, res: Response, next: NextFunction, fallthrough: () => void): boolean {
    if (this.routers.length === 0 || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const path = pathOf(req.url);
    if (!DATA_ROUTE.test(path) && !(this.page && PAGE_ROUTE.test(path))) return false;
    let at = 0;
    const tryNext = (err?: unknown): void => {
      if (err) return next(err);
      const router = this.routers[at++];
      if (router) router(req, res, tryNext);
      else fallthrough();
    };
    tryNext();
    return true;
  }

  /** The middleware refused `req` for want of a key: when it is for the usage page, a router is mounted behind it at another path. */
  missingKey(req: Request): void {
    if (this.page && PAGE_ANYWHERE.test(pathOf(req.originalUrl ?? req.url))) this.report(req);
  }

  /** A usage route that the middleware, mounted at another path, let through (and counted) as any request. */
  report(req: Request): void {
    const route = `${req.method} ${pathOf(req.originalUrl ?? req.url)}`;
    const message =
      `the usage router is mounted after the auth middleware at another path (seen at ${route}), so the middleware ` +
      'refuses its page without a key and counts its data calls as usage: mount the usage router before the middleware, ' +
      "or after it at the same path, as in app.use('/v1', auth, auth.usageRouter())";
    this.misplaced.report(new ConfigError('usageRouter', message), 'misplaced');
  }
}
