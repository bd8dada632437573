import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main';
import { childEnv } from '../helpers';

/** The built CLI, as `npx daymind-keys` runs it. */
export const CLI = resolve(__dirname, '../../dist/cjs/cli/index.js');
const execFileP = promisify(execFile);

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with only PATH and `env` in its environment. */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env: childEnv(env) });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * Runs the CLI's `main()` in this process with the clock `now` (ms), as `cli()` runs the built
 * tool: for tests whose answer depends on the date, which a child process would read from the
 * real clock.
 */
export async function cliAt(now: number, args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, now: () => now });
  return { code, stdout, stderr };
}
