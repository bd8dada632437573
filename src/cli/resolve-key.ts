import { hashKey } from '../keys';
import type { KeyRecord } from '../store/types';
import { CommandError, UsageError } from './errors';

/**
 * Finds the one record named by `name`: the full key, the beginning of a display prefix
 * (`dm_8fJq`), or the beginning of a key hash (at least 8 hex digits). Several matches are an
 * error listing them.
 */
export function resolveKey(records: KeyRecord[], name: string): KeyRecord {
  if (name === '') throw new UsageError('the key or prefix is empty');
  const hash = hashKey(name);
  const exact = records.find((r) => r.key_hash === hash);
  if (exact) return exact;
  const isHashPrefix = name.length >= 8 && /^[0-9a-f]+$/.test(name);
  const matches = records.filter(
    (r) => (r.key_prefix !== '' && r.key_prefix.startsWith(name)) || (isHashPrefix && r.key_hash.startsWith(name)),
  );
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new CommandError(`no key matches "${name}"`);
  const shown = matches.slice(0, 10).map((r) => `${r.key_prefix} (${r.owner}, ${r.key_hash.slice(0, 12)})`);
  const more = matches.length > 10 ? `, and ${matches.length - 10} more` : '';
  throw new CommandError(
    `"${name}" matches ${matches.length} keys: ${shown.join(', ')}${more}; name one by its full key, a longer prefix or its hash`,
  );
}
