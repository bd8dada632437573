import { DaymindError, describeError } from '../errors';

/**
 * Loads an optional peer dependency only when a feature needs it. When it cannot be loaded,
 * throws ERR_DAYMIND_MISSING_PEER with `message(cause)`, `cause` being the first line of the error.
 */
export function loadPeer<T>(name: string, message: (cause: string) => string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch (err) {
    throw new DaymindError('ERR_DAYMIND_MISSING_PEER', message(describeError(err).split('\n')[0]!), { cause: err });
  }
}
