import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler, Request } from 'express';
import { sendJsonError, type HttpErrorCode } from './responses';

export interface JsonErrorHandlerOptions {
  /**
   * Told of every error answered with a 5xx status, with its request (a 4xx is the client's
   * doing and is not reported). Default: one line on stderr, `[daymind-auth] METHOD PATH failed:`
   * and the error's stack.
   */
  onError?: (err: unknown, req: Request) => void;
}

/** What an error thrown or passed to next() says of itself (Express, body-parser, http-errors). */
interface HttpErrorLike {
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  message?: unknown;
  type?: unknown;
  limit?: unknown;
}

/** `Payload Too Large` -> `payload_too_large`. */
const codeOf = (name: string): HttpErrorCode => name.toLowerCase().replace(/[^a-z0-9]+/g, '_') as HttpErrorCode;

/**
 * An Express error handler answering every error with daymind-auth's JSON shape,
 * `{ "error": { "code", "message" } }`, and `Cache-Control: no-store`, never with a stack or a
 * file path. Mount it last: `app.use(jsonErrorHandler())`.
 *
 * - A 4xx error (`status` or `statusCode` from 400 to 499, as body-parser and http-errors set
 *   it) keeps its status. A body `express.json()` cannot parse is `invalid_json`; any other code
 *   is the status's name in snake case (`payload_too_large`, `not_found`, `bad_request`). The
 *   message is the error's own when it is safe to show (`expose`, as http-errors sets it for 4xx),
 *   else the status's name; body-parser's JSON and size errors get messages of their own.
 * - Anything else is a fault of the server: its 5xx status (500 when it has none), a code of the
 *   status's name (`internal_server_error`) and a fixed message; the error goes to `onError`.
 * - When the response has begun, nothing can be added to it: the error goes on to Express, which
 *   closes the connection.
 */
export function jsonErrorHandler(options: JsonErrorHandlerOptions = {}): ErrorRequestHandler {
  const onError =
    options.onError ??
    ((err: unknown, req: Request) =>
      console.error(`[daymind-auth] ${req.method} ${req.originalUrl} failed: ${err instanceof Error ? err.stack : String(err)}`));
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    const e: HttpErrorLike = typeof err === 'object' && err !== null ? err : {};
    const given = Number(e.status ?? e.statusCode);
    const status = Number.isInteger(given) && given >= 400 && given <= 599 ? given : 500;
    const name = STATUS_CODES[status] ?? 'Error';
    if (status >= 500) {
      onError(err, req);
      sendJsonError(res, status, codeOf(name), 'The server could not answer this request.');
      return;
    }
    if (e.type === 'entity.parse.failed') {
      sendJsonError(res, status, 'invalid_json', 'The request body is not valid JSON.');
    } else if (e.type === 'entity.too.large' && typeof e.limit === 'number') {
      sendJsonError(res, status, 'payload_too_large', `The request body is larger than the ${e.limit} bytes this endpoint accepts.`);
    } else {
      const message = e.expose === true && typeof e.message === 'string' && e.message !== '' ? e.message : `${name}.`;
      sendJsonError(res, status, codeOf(name), message);
    }
  };
}
