import { parseArgs } from 'node:util';
import { DaymindError } from '../errors';
import { DEFAULT_STORE_PATH, JsonFileKeyStore } from '../store/json-file';
import * as commands from './commands';
import { readEnvFile } from './env-file';
import { UsageError } from './errors';
import { COMMAND_HELP, TOOL_HELP } from './help';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
}

const OPTIONS = {
  store: { type: 'string' },
  'env-file': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'rate-limit': { type: 'string' },
  expires: { type: 'string' },
  meta: { type: 'string', multiple: true },
  grace: { type: 'string' },
  owner: { type: 'string' },
} as const;

/** Options each command takes besides the global ones, and how many arguments. */
const COMMANDS: Record<string, { options: string[]; args: string[] }> = {
  list: { options: [], args: [] },
  create: { options: ['rate-limit', 'expires', 'meta'], args: ['OWNER'] },
  revoke: { options: [], args: ['KEY|PREFIX'] },
  show: { options: [], args: ['KEY|PREFIX'] },
  rotate: { options: ['grace'], args: ['KEY|PREFIX'] },
  usage: { options: ['owner'], args: [] },
};
const GLOBAL = ['store', 'env-file', 'json', 'help'];

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
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
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
    throw new UsageError('a command is required: list, create, revoke, show, rotate or usage');
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
  if (args.length > spec.args.length) throw new UsageError(`${command} takes ${spec.args.length === 0 ? 'no arguments' : `only ${spec.args.join(' ')}`}, got "${args.join(' ')}"`);

  const fileEnv = values['env-file'] !== undefined ? readEnvFile(values['env-file']) : {};
  const storePath = values.store ?? (fileEnv.API_KEY_STORE_PATH || io.env.API_KEY_STORE_PATH || DEFAULT_STORE_PATH);
  if (storePath.trim() === '') throw new UsageError('--store: the path is empty');

  const ctx: commands.CommandContext = {
    openStore: (create) => new JsonFileKeyStore({ path: storePath, create, reloadIntervalMs: 0 }),
    json: values.json === true,
    out: io.stdout,
    note: io.stderr,
    now: Date.now(),
  };
  const options: commands.CommandOptions = values;
  switch (command) {
    case 'list':
      await commands.list(ctx);
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
  }
  return 0;
}
