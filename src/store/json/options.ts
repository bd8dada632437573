import type { StoreError } from '../../errors';

/**
 * @deprecated The JSON store no longer writes a usage journal; every flush
 * rewrites the file. The option is still accepted and checked, and has no effect.
 */
export interface UsageJournalOptions {
  minStoreBytes?: number;
  foldAfterMs?: number;
}

export interface JsonFileKeyStoreOptions {
  /** The store file. Default `data/api_keys.json` (relative to the working directory). */
  path?: string;
  /** How often the file is checked for changes made by others, in ms. Default 500. */
  reloadIntervalMs?: number;
  /** Prefix of generated keys. Default `dm_`. */
  keyPrefix?: string;
  /**
   * Create the directory and an empty store when the file is missing. Default true; with false a
   * missing file is an ERR_DAYMIND_STORE_UNREADABLE error (read-only tools, typos in a path).
   */
  create?: boolean;
  /** Called with problems met in the background (unreadable or corrupt file, failed lock). */
  onError?: (err: StoreError) => void;
  /** @deprecated No effect: see {@link UsageJournalOptions}. */
  usageJournal?: UsageJournalOptions | false;
  /** The clock, in ms since the epoch, for every time the store stamps or compares. Default `Date.now`. */
  now?: () => number;
}

/**
 * What is wrong with a `usageJournal` option, naming the part at fault (`usageJournal` or
 * `usageJournal.<name>`); undefined when it is valid. daymindAuth() and the store both check with
 * it: the option has no effect any more, but a typo in it is still an error.
 */
export function usageJournalProblem(value: unknown): { option: string; message: string } | undefined {
  if (value === undefined || value === false) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { option: 'usageJournal', message: `must be false or { minStoreBytes, foldAfterMs }, got ${JSON.stringify(value)}` };
  }
  for (const [name, n] of Object.entries(value)) {
    if (name !== 'minStoreBytes' && name !== 'foldAfterMs')
      return { option: `usageJournal.${name}`, message: 'is not an option of usageJournal' };
    if (n !== undefined && !(typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
      return { option: `usageJournal.${name}`, message: `must be a whole number of 0 or more, got ${JSON.stringify(n)}` };
    }
  }
  return undefined;
}
