import { readdirSync } from 'node:fs';
import { parsePrice, toBeancount, toCsv, toJson, totalsByOwner, type Price } from '../billing/export';
import { readLedger, type LedgerEntry } from '../billing/ledger';
import { print, type CommandContext, type CommandOptions } from './commands';
import { CommandError, UsageError } from './errors';

/* The commands that read the usage ledger: export, and the months and entries report reads. */

/** `--month YYYY-MM` checked (a usage error when it is not), or undefined when not given. */
export function parseMonth(text: string | undefined): string | undefined {
  if (text !== undefined && !/^\d{4}-(0[1-9]|1[0-2])$/.test(text)) throw new UsageError(`--month: "${text}" is not YYYY-MM`);
  return text;
}

/** The months that have a ledger file in the directory, oldest first. */
export function ledgerMonths(ledgerDir: string): string[] {
  try {
    return readdirSync(ledgerDir)
      .map((f) => /^ledger-(\d{4}-\d{2})\.jsonl$/.exec(f)?.[1])
      .filter((m): m is string => m !== undefined)
      .sort();
  } catch (err) {
    throw new CommandError(`cannot read the ledger directory ${ledgerDir}: ${(err as Error).message}`);
  }
}

/** The ledger entries of the months, damaged lines skipped and named in one note. */
export async function readLedgerEntries(ctx: CommandContext, ledgerDir: string, months: string[]): Promise<LedgerEntry[]> {
  const bad: string[] = [];
  const entries = await readLedger(ledgerDir, months, (file, line) => bad.push(`${file}:${line}`));
  if (bad.length > 0) ctx.note(`skipped ${bad.length} damaged ledger line(s): ${bad.slice(0, 5).join(', ')}\n`);
  return entries;
}

/** Per-owner totals of the usage ledger, for invoicing. */
export async function exportLedger(ctx: CommandContext, options: CommandOptions, ledgerDir: string): Promise<void> {
  const format = options.format ?? (ctx.json ? 'json' : 'csv');
  if (format !== 'csv' && format !== 'json' && format !== 'beancount')
    throw new UsageError(`--format: "${format}" is not csv, json or beancount`);
  parseMonth(options.month);
  let price: Price | undefined;
  if (options.price !== undefined) {
    const [amount = '', currency = '', ...rest] = options.price.trim().split(/\s+/);
    price = rest.length === 0 ? parsePrice(amount, currency) : undefined;
    if (!price) throw new UsageError(`--price: "${options.price}" is not an amount and a currency, e.g. "0.001 USD"`);
  }
  if (format === 'beancount' && !price) throw new UsageError('--format beancount needs --price, e.g. --price "0.001 USD"');
  const months = options.month !== undefined ? [options.month] : ledgerMonths(ledgerDir);
  let entries = await readLedgerEntries(ctx, ledgerDir, months);
  if (options.owner !== undefined) {
    entries = entries.filter((e) => e.owner === options.owner);
    if (entries.length === 0)
      throw new CommandError(`the ledger has no usage of "${options.owner}"${options.month ? ` in ${options.month}` : ''}`);
  }
  const totals = totalsByOwner(entries);
  if (format === 'json') return print(ctx, toJson(totals, price));
  ctx.out(format === 'csv' ? toCsv(totals, price) : toBeancount(totals, price!, ctx.now));
}
