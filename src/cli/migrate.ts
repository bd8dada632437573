import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { JsonFileKeyStore } from '../store/json/json-file-store';
import { writeMigrationNote } from '../store/json/migrated';
import { PostgresKeyStore } from '../store/postgres/postgres-store';
import type { RawRecord } from '../store/record';
import { RedisKeyStore } from '../store/redis/redis-store';
import type { KeyRecord } from '../store/types';
import { isDatabaseUrl, isRedisUrl } from '../config/setting-values';
import { print, type CommandContext } from './commands';
import { CommandError, UsageError } from './errors';
import { openAdminStore, redactUrl, type StoreLocation } from './open-store';

/** Where a store is, as `--from` and `--to` name it: a redis:// or postgres:// URL, else a JSON file. */
function locate(value: string, names: { prefix: string; schema: string }): StoreLocation {
  if (isRedisUrl(value)) return { kind: 'redis', url: value, prefix: names.prefix };
  if (isDatabaseUrl(value)) return { kind: 'postgres', url: value, schema: names.schema };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) throw new UsageError(`"${value}" is neither a redis:// nor a postgres:// URL`);
  return { kind: 'file', path: value };
}

function describe(location: StoreLocation): string {
  if (location.kind === 'file') return location.path;
  if (location.kind === 'redis') return `${redactUrl(location.url)} (prefix ${location.prefix})`;
  return `${redactUrl(location.url)} (schema ${location.schema})`;
}

interface Copied {
  record: KeyRecord;
  legacy: boolean;
}

/** Every key of the source store, and whether it was a plain key of an older store. */
async function readSource(ctx: CommandContext, from: StoreLocation): Promise<Copied[]> {
  if (from.kind === 'file') {
    const source = new JsonFileKeyStore({ path: from.path, create: false, reloadIntervalMs: 0 });
    try {
      return (await source.list()).map((record) => ({ record, legacy: source.isUnchecksummed(record.key_hash) }));
    } finally {
      await source.close();
    }
  }
  const opened = await openAdminStore(from, false, () => ctx.now);
  try {
    const store = opened.store as RedisKeyStore | PostgresKeyStore;
    return (await store.list()).map((record) => ({ record, legacy: store.isUnchecksummed(record.key_hash) }));
  } finally {
    await opened.close();
  }
}

/**
 * A new JSON store file holding the records, written whole or not at all, never over an
 * existing file. Plain keys of older stores are not known in plain text anywhere: they are
 * written as hashes, which the JSON store accepts only in the checksummed key format.
 */
function writeNewFile(path: string, records: Copied[]): number {
  if (existsSync(path)) throw new CommandError(`${path} exists already: migrate to a new file`);
  const temp = join(dirname(resolve(path)), `.${randomBytes(6).toString('hex')}.migrate.tmp`);
  writeFileSync(
    temp,
    JSON.stringify(
      records.map(({ record }) => record),
      null,
      2,
    ) + '\n',
    { mode: 0o600 },
  );
  try {
    linkSync(temp, path); // fails when the file appeared meanwhile
  } catch (err) {
    throw new CommandError(`cannot create ${path}: ${(err as Error).message}`);
  } finally {
    unlinkSync(temp);
  }
  return records.length;
}

async function writeTarget(ctx: CommandContext, to: StoreLocation, records: Copied[]): Promise<number> {
  if (to.kind === 'file') return writeNewFile(to.path, records);
  const opened = await openAdminStore(to, false, () => ctx.now);
  try {
    const rows = records.map(({ record, legacy }) => ({ raw: { ...record } as RawRecord, hash: record.key_hash, legacy }));
    if (opened.store instanceof PostgresKeyStore) return await opened.store.importRecords(rows);
    let copied = 0;
    for (const row of rows) if (await (opened.store as RedisKeyStore).importRecord(row.raw, row.hash, row.legacy)) copied++;
    return copied;
  } finally {
    await opened.close();
  }
}

/**
 * Copies every key and its counters from one store to another: a JSON file, Redis or PostgreSQL
 * to Redis or PostgreSQL, or Redis or PostgreSQL to a new JSON file. A key the target has
 * already is left as it is, so running it twice counts nothing twice.
 */
export async function migrate(
  ctx: CommandContext,
  fromValue: string | undefined,
  toValue: string | undefined,
  names: { prefix: string; schema: string },
): Promise<void> {
  if (fromValue === undefined || toValue === undefined)
    throw new UsageError('migrate needs --from FILE and --to URL, or --from URL and --to URL or a new FILE');
  const from = locate(fromValue, names);
  const to = locate(toValue, names);
  if (from.kind === 'file' && to.kind === 'file') throw new UsageError('--to: a JSON store moves to a redis:// or postgres:// URL');
  const records = await readSource(ctx, from);
  const copied = await writeTarget(ctx, to, records);
  const skipped = records.length - copied;
  if (from.kind === 'file') writeMigrationNote(resolve(from.path), { to: describe(to), at: ctx.now / 1000 });
  if (ctx.json) {
    const where = to.kind === 'redis' ? { prefix: to.prefix } : to.kind === 'postgres' ? { schema: to.schema } : {};
    return print(ctx, { from: fromValue, to: to.kind === 'file' ? to.path : redactUrl(to.url), ...where, copied, skipped });
  }
  const source = from.kind === 'file' ? from.path : describe(from);
  if (to.kind === 'file') return ctx.out(`Copied ${copied} key(s) from ${source} to the new JSON store ${to.path}.\n`);
  ctx.out(
    `Copied ${copied} key(s) from ${source} to ${describe(to)}; ${skipped} were in ${to.kind === 'redis' ? 'Redis' : 'PostgreSQL'} already and were left as they are.\n`,
  );
}
