import type { Request } from 'express';

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;
/** The usual form, `Bearer <key>` with one space: tested, then sliced (no match array). */
const PLAIN_BEARER = /^Bearer \S+$/i;

/**
 * The key a request carries: `Authorization: Bearer <key>`, else `X-API-Key`, else (only when
 * enabled) a query parameter. A non-Bearer Authorization header is ignored, not an error, so
 * that Basic auth in front of the API keeps working alongside X-API-Key.
 */
export function extractKey(req: Request, queryParam: string | false): string | undefined {
  const { headers } = req;
  const authorization = headers.authorization;
  if (authorization) {
    if (PLAIN_BEARER.test(authorization)) return authorization.slice(7);
    const match = BEARER.exec(authorization);
    if (match) return match[1];
  }
  const header = headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header.trim();
  if (queryParam) {
    const value = (req.query as Record<string, unknown> | undefined)?.[queryParam];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}
