import { types } from 'node:util';

/**
 * Stable error codes. Code that handles daymind-auth errors should switch on `code`, never on the
 * message, which may be reworded.
 */
export type DaymindErrorCode =
  | 'ERR_DAYMIND_CONFIG'
  | 'ERR_DAYMIND_STORE_CORRUPT'
  | 'ERR_DAYMIND_STORE_UNREADABLE'
  | 'ERR_DAYMIND_STORE_WRITE'
  | 'ERR_DAYMIND_STORE_LOCK'
  | 'ERR_DAYMIND_USAGE_FLUSH'
  | 'ERR_DAYMIND_INVALID_INPUT'
  | 'ERR_DAYMIND_UNAVAILABLE'
  | 'ERR_DAYMIND_MISSING_PEER'
  | 'ERR_DAYMIND_BILLING';

export class DaymindError extends Error {
  readonly code: DaymindErrorCode;

  constructor(code: DaymindErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DaymindError';
    this.code = code;
  }
}

/** A configuration value (option or environment variable) is wrong. Thrown at construction. */
export class ConfigError extends DaymindError {
  /** The environment variable or option at fault. */
  readonly variable: string;

  constructor(variable: string, message: string) {
    super('ERR_DAYMIND_CONFIG', `${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/** A key-store file could not be read, parsed, locked or written. Names the file. */
export class StoreError extends DaymindError {
  readonly path: string;

  constructor(code: DaymindErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'StoreError';
    this.path = path;
  }
}

/**
 * The onError hook as daymind-auth calls it (default: one line on stderr). A hook that throws must
 * not break what reported to it (a request would get Express's error page, a timer would end the
 * process): what it throws goes to stderr with the error it was given.
 */
export function safeOnError(hook: ((err: Error) => void) | undefined): (err: Error) => void {
  if (!hook) return (err) => console.error(`[daymind-auth] ${err.message}`);
  return (err) => {
    try {
      hook(err);
    } catch (thrown) {
      console.error(`[daymind-auth] ${err.message} (the onError hook threw: ${describeError(thrown)})`);
    }
  };
}

/**
 * Short description of any thrown value, for messages. An error made in another realm (a vm
 * context, as under jest) is an error too, described by its message alone.
 */
export function describeError(err: unknown): string {
  if (err instanceof Error || types.isNativeError(err)) return err.message;
  return String(err);
}
