import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DaymindError } from '../errors';
import { readSetting, SETTINGS, type Setting } from '../config/settings';
import { defaultLedgerDir, isDatabaseUrl, isRedisUrl } from '../config/setting-values';
import { migrationMessage, readMigrationNote } from '../store/json/migrated';
import { billingStatus } from './billing';
import * as commands from './commands';
import { exportLedger } from './ledger-commands';
import { migrate } from './migrate';
import { readEnvFile } from './env-file';
import { UsageError } from './errors';
import { COMMAND_HELP, TOOL_HELP } from './help';
import { openAdminStore, type AdminStore, type StoreLocation } from './open-store';
import * as planCommands from './plan-commands';
import { PlansSource } from './plans';
import { report } from './report';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** The clock, in ms, for every time a command stamps or compares. Default `Date.now`. */
  now?: () => number;
}

const OPTIONS = {
  store: { type: 'string' },
  redis: { type: 'string' },
  database: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  'env-file': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'rate-limit': { type: 'string' },
  expires: { type: 'string' },
  meta: { type: 'string', multiple: true },
  grace: { type: 'string' },
  'stripe-customer': { type: 'string' },
  'paddle-subscription': { type: 'string' },
  format: { type: 'string' },
  month: { type: 'string' },
  price: { type: 'string' },
  'ledger-dir': { type: 'string' },
  owner: { type: 'string' },
  html: { type: 'string' },
  plan: { type: 'string' },
  scopes: { type: 'string' },
  credits: { type: 'string' },
  refill: { type: 'string' },
  add: { type: 'string' },
  set: { type: 'string' },
  email: { type: 'string' },
  'dry-run': { type: 'string' },
} as const;

/** Options each command takes besides the global ones, and how many arguments. */
const COMMANDS: Record<string, { options: string[]; args: string[] }> = {
  list: { options: ['owner'], args: [] },
  create: {
    options: ['rate-limit', 'expires', 'meta', 'email', 'stripe-customer', 'paddle-subscription', 'plan', 'scopes', 'credits', 'refill'],
    args: ['OWNER'],
  },
  set: {
    options: ['owner', 'meta', 'email', 'rate-limit', 'expires', 'stripe-customer', 'paddle-subscription', 'plan', 'scopes'],
    args: ['KEY|PREFIX'],
  },
  credits: { options: ['add', 'set', 'refill'], args: ['KEY|PREFIX'] },
  plans: { options: [], args: [] },
  export: { options: ['format', 'month', 'owner', 'price', 'ledger-dir'], args: [] },
  report: { options: ['month', 'owner', 'html', 'ledger-dir', 'email', 'dry-run'], args: [] },
  billing: { options: ['ledger-dir'], args: [] },
  revoke: { options: [], args: ['KEY|PREFIX'] },
  show: { options: [], args: ['KEY|PREFIX'] },
  rotate: { options: ['grace'], args: ['KEY|PREFIX'] },
  usage: { options: ['owner'], args: [] },
  migrate: { options: ['from', 'to'], args: [] },
};
const GLOBAL = ['store', 'redis', 'database', 'env-file', 'json', 'help'];

/** Runs the tool; returns the exit code. Never throws. */
export async function main(argv: string[], io: CliIO): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`daymind-keys: ${err.message} (see daymind-keys --help)\n`);
      return 2;
    }
    if (err instanceof DaymindError && err.code === 'ERR_DAYMIND_INVALID_INPUT') {
      io.stderr(`daymind-keys: ${err.message}\n`);
      return 2;
    }
    io.stderr(`daymind-keys: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

async function run(argv: string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: reportEmailFlag(joinNegativeNumbers(argv)), options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;

  if (command === undefined) {
    if (values.help) {
      io.stdout(TOOL_HELP);
      return 0;
    }
    throw new UsageError(
      'a command is required: list, create, set, credits, plans, revoke, show, rotate, usage, report, export, billing or migrate',
    );
  }
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(`unknown command "${command}"`);
  if (values.help) {
    io.stdout(COMMAND_HELP[command]!);
    return 0;
  }
  for (const name of Object.keys(values)) {
    if (!GLOBAL.includes(name) && !spec.options.includes(name)) throw new UsageError(`${command} does not take --${name}`);
  }
  if (args.length < spec.args.length) throw new UsageError(`${command} needs ${spec.args.join(' ')}`);
  if (args.length > spec.args.length)
    throw new UsageError(
      `${command} takes ${spec.args.length === 0 ? 'no arguments' : `only ${spec.args.join(' ')}`}, got "${args.join(' ')}"`,
    );

  const fileEnv = values['env-file'] !== undefined ? readEnvFile(values['env-file']) : {};
  const setting = (name: string): string | undefined => fileEnv[name] || io.env[name] || undefined;
  const prefix = fromEnv(SETTINGS.redisPrefix, setting);
  const schema = fromEnv(SETTINGS.databaseSchema, setting);
  const location = command === 'migrate' || command === 'plans' ? undefined : locateStore(values, setting, prefix, schema);

  const now = io.now ?? Date.now;
  const ctx: commands.CommandContext = {
    openStore: (create) => openStore(location!, create, now, io),
    json: values.json === true,
    out: io.stdout,
    note: io.stderr,
    now: now(),
    plans: new PlansSource(setting(SETTINGS.plansFile.env!)),
  };
  const options: commands.CommandOptions = values;
  switch (command) {
    case 'list':
      await commands.list(ctx, options);
      break;
    case 'create':
      await commands.create(ctx, args[0]!, options);
      break;
    case 'revoke':
      await commands.revoke(ctx, args[0]!);
      break;
    case 'show':
      await commands.show(ctx, args[0]!);
      break;
    case 'rotate':
      await commands.rotate(ctx, args[0]!, options);
      break;
    case 'usage':
      await commands.usage(ctx, options);
      break;
    case 'set':
      await commands.set(ctx, args[0]!, options);
      break;
    case 'credits':
      await planCommands.credits(ctx, args[0]!, options);
      break;
    case 'plans':
      planCommands.plans(ctx);
      break;
    case 'report':
      await report(ctx, options, ledgerDirOf(values['ledger-dir'], setting, location!), () => ({
        smtpUrl: fromEnv(SETTINGS.smtpUrl, setting),
        from: fromEnv(SETTINGS.smtpFrom, setting),
      }));
      break;
    case 'export':
      await exportLedger(ctx, options, ledgerDirOf(values['ledger-dir'], setting, location!));
      break;
    case 'billing':
      await billingStatus(ctx, ledgerDirOf(values['ledger-dir'], setting, location!));
      break;
    case 'migrate':
      await migrate(ctx, values.from, values.to, { prefix, schema });
      break;
  }
  return 0;
}

/**
 * Opens the store a command works on, saying on stderr what a user in the wrong directory needs to
 * know: that a command created a new JSON store (and where), or that the JSON store named was
 * migrated to Redis.
 */
async function openStore(location: StoreLocation, create: boolean, now: () => number, io: CliIO): Promise<AdminStore> {
  if (location.kind !== 'file') return openAdminStore(location, create, now);
  const path = resolve(location.path);
  const note = readMigrationNote(path);
  if (note) io.stderr(`daymind-keys: note: ${migrationMessage(path, note)}\n`);
  const fresh = create && !existsSync(path);
  const opened = await openAdminStore(location, create, now);
  if (fresh) io.stderr(`daymind-keys: created a new key store at ${path}\n`);
  return opened;
}

/** Options whose value may be a negative number: `--add -5` becomes `--add=-5`, which parseArgs takes. */
const NUMERIC = ['--add', '--set', '--credits'];

function joinNegativeNumbers(argv: string[]): string[] {
  const negative = (i: number) => NUMERIC.includes(argv[i]!) && /^-\d+$/.test(argv[i + 1] ?? '');
  return argv.flatMap((arg, i) => (negative(i) ? [`${arg}=${argv[i + 1]}`] : i > 0 && negative(i - 1) ? [] : [arg]));
}

/** `report --email` is a flag (create and set take `--email ADDRESS`): it becomes `--email=all`. */
function reportEmailFlag(argv: string[]): string[] {
  if (!argv.includes('report')) return argv;
  return argv.map((arg) => (arg === '--email' ? '--email=all' : arg));
}

/**
 * A setting of src/config/settings.ts from the --env-file or the environment (not empty), else its
 * default; a bad value is a UsageError naming the variable.
 */
function fromEnv<T>(row: Setting<T>, setting: (name: string) => string | undefined): T {
  const env = { [row.env!]: setting(row.env!) };
  return readSetting(row, undefined, env, (name, message) => new UsageError(`${name} ${message}`)).value;
}

/** The usage ledger's directory: --ledger-dir, else DAYMIND_LEDGER_DIR, else the JSON store's directory, else data. */
function ledgerDirOf(flag: string | undefined, setting: (name: string) => string | undefined, location: StoreLocation): string {
  return flag ?? setting(SETTINGS.ledgerDir.env!) ?? defaultLedgerDir(location.kind === 'file' ? resolve(location.path) : undefined);
}

function databaseUrl(value: string, name: string): string {
  if (!isDatabaseUrl(value)) throw new UsageError(`${name}: "${value}" is not a postgres:// or postgresql:// URL`);
  return value;
}

function redisUrl(value: string, name: string): string {
  if (!isRedisUrl(value)) throw new UsageError(`${name}: "${value}" is not a redis:// or rediss:// URL`);
  return value;
}

/**
 * The store to administer: --redis URL, else --store PATH, else what the server's environment
 * says (--env-file first, then the environment): KEY_STORE=redis with REDIS_URL, or
 * API_KEY_STORE_PATH, else data/api_keys.json.
 */
function locateStore(
  values: { store?: string; redis?: string; database?: string },
  setting: (name: string) => string | undefined,
  prefix: string,
  schema: string,
): StoreLocation {
  const named = (['store', 'redis', 'database'] as const).filter((name) => values[name] !== undefined);
  if (named.length > 1)
    throw new UsageError(
      `${named.map((n) => `--${n}`).join(' and ')} name ${named.length === 2 ? 'two' : 'three'} different stores; give one`,
    );
  if (values.redis !== undefined) return { kind: 'redis', url: redisUrl(values.redis, '--redis'), prefix };
  if (values.database !== undefined) return { kind: 'postgres', url: databaseUrl(values.database, '--database'), schema };
  if (values.store !== undefined) {
    if (values.store.trim() === '') throw new UsageError('--store: the path is empty');
    return { kind: 'file', path: values.store };
  }
  if (setting(SETTINGS.keyStore.env!) === 'postgres') {
    const url = setting(SETTINGS.databaseUrl.env!);
    if (!url) throw new UsageError('KEY_STORE is "postgres" but DATABASE_URL is not set');
    return { kind: 'postgres', url: databaseUrl(url, 'DATABASE_URL'), schema };
  }
  if (setting(SETTINGS.keyStore.env!) === 'redis') {
    const url = setting(SETTINGS.redis.env!);
    if (!url) throw new UsageError('KEY_STORE is "redis" but REDIS_URL is not set');
    return { kind: 'redis', url: redisUrl(url, 'REDIS_URL'), prefix };
  }
  const path = setting(SETTINGS.storePath.env!) ?? SETTINGS.storePath.default;
  if (path.trim() === '') throw new UsageError('API_KEY_STORE_PATH is empty');
  return { kind: 'file', path };
}
