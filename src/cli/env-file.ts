import { readFileSync } from 'node:fs';
import { CommandError, UsageError } from './errors';

/**
 * Reads a systemd-style environment file (`EnvironmentFile=`): `NAME=value` lines, `#` or `;`
 * comments, blank lines, an optional `export `, values optionally in single or double quotes.
 */
export function readEnvFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CommandError(`cannot read the env file ${path}: ${(err as Error).message}`);
  }
  const env: Record<string, string> = {};
  text.split(/\r?\n/).forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(trimmed);
    if (!match) throw new UsageError(`${path}:${i + 1}: not a NAME=value line`);
    let value = match[2]!;
    const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
    if (quoted) value = quoted[1]!;
    env[match[1]!] = value;
  });
  return env;
}
