import type { NextFunction, Request, Response, Router } from 'express';
import { ConfigError } from '../errors';
import { OnceReporter } from '../report-once';
import { createUsageRouter, type UsageRouterOptions, type UsageRouterParts } from './router';

/** The data routes of a usage router, under its mount point (Express matches them case-insensitively, with or without a final slash). */
const DATA_ROUTE = /^\/usage(?:\/history)?\/?$/i;

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The usage routers made by one daymindAuth(). The middleware hands them the requests for their
 * data routes under its own mount point, untouched: they check the key themselves and spend
 * nothing. So a router mounted after the middleware at the same path
 * (`app.use('/v1', auth, auth.usageRouter())`) works as one mounted before it. A router mounted
 * after the middleware at another path cannot be found this way; that is reported once.
 */
export class UsageRouters {
  private readonly routers: Router[] = [];
  private readonly misplaced: OnceReporter;

  constructor(private readonly parts: Omit<UsageRouterParts, 'misplaced'>) {
    this.misplaced = new OnceReporter(parts.onError);
  }

  /** A new usage router (`auth.usageRouter()`). */
  make(options: UsageRouterOptions = {}): Router {
    const router = createUsageRouter({ ...this.parts, misplaced: (req) => this.report(req) }, options);
    this.routers.push(router);
    return router;
  }

  /**
   * Serves `req` with the usage routers when it is for one of their routes (`fallthrough` when
   * none of them takes it after all); false when it is not, to be checked as any request.
   */
  serve(req: Request, res: Response, next: NextFunction, fallthrough: () => void): boolean {
    if (this.routers.length === 0 || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const path = pathOf(req.url);
    if (!DATA_ROUTE.test(path)) return false;
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

  /** A usage route that the middleware, mounted at another path, let through (and counted) as any request. */
  report(req: Request): void {
    const route = `${req.method} ${pathOf(req.originalUrl ?? req.url)}`;
    const message =
      `the usage router is mounted after the auth middleware at another path (seen at ${route}), so the middleware ` +
      'counts its calls as usage: mount the usage router before the middleware, ' +
      "or after it at the same path, as in app.use('/v1', auth, auth.usageRouter())";
    this.misplaced.report(new ConfigError('usageRouter', message), 'misplaced');
  }
}
