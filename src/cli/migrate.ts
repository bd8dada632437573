import { resolve } from 'node:path';
import { JsonFileKeyStore } from '../store/json-file';
import { writeMigrationNote } from '../store/migrated';
import { isRedisUrl } from '../settings';
import type { RedisKeyStore } from '../store/redis';
import { print, type CommandContext } from './commands';
import { UsageError } from './errors';
import { openAdminStore, redactUrl } from './open-store';

/**
 * Copies every key and its counters from a JSON store file to a Redis store. A key Redis has
 * already is left as it is, so running it twice counts nothing twice.
 */
export async function migrate(ctx: CommandContext, from: string | undefined, to: string | undefined, prefix: string): Promise<void> {
  if (from === undefined || to === undefined) throw new UsageError('migrate needs --from FILE and --to redis://...');
  if (!isRedisUrl(to)) throw new UsageError(`--to: "${to}" is not a redis:// or rediss:// URL`);
  const source = new JsonFileKeyStore({ path: from, create: false, reloadIntervalMs: 0 });
  const records = await source.list();
  const target = await openAdminStore({ kind: 'redis', url: to, prefix }, false, () => ctx.now);
  let copied = 0;
  try {
    for (const record of records) {
      if (await (target.store as RedisKeyStore).importRecord({ ...record }, record.key_hash, source.isUnchecksummed(record.key_hash)))
        copied++;
    }
  } finally {
    await target.close();
    await source.close();
  }
  const skipped = records.length - copied;
  writeMigrationNote(resolve(from), { to: `${redactUrl(to)} (prefix ${prefix})`, at: ctx.now / 1000 });
  if (ctx.json) return print(ctx, { from, to: redactUrl(to), prefix, copied, skipped });
  ctx.out(
    `Copied ${copied} key(s) from ${from} to ${redactUrl(to)} (prefix ${prefix}); ${skipped} were in Redis already and were left as they are.\n`,
  );
}
