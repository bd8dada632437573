import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ledgerMonth } from '../billing/ledger';
import { describeError } from '../errors';
import { writeAtomic } from '../internal/fs/file-io';
import { JsonFileKeyStore } from '../store/json/json-file-store';
import { HISTORY_RETENTION_DAYS, dayOffset, isoDay, type UsageHistory } from '../usage/history';
import { FileUsageHistory, historyDirFor } from '../usage/history-file';
import { print, statusText, withStore, type CommandContext, type CommandOptions } from './commands';
import type { KeyRecord } from '../store/types';
import { composeSummary, deliverSummaries, ownerAddresses, type SummaryMail } from './report-email';
import { ledgerMonths, parseMonth, readLedgerEntries } from './ledger-commands';
import { CommandError, UsageError } from './errors';
import type { AdminStore } from './open-store';
import { buildReport, monthDays, type Report, type ReportInput } from './report-data';
import { monthTitle, renderHtml } from './report-html';
import { renderTable } from './table';

/**
 * `report`: one month's usage per owner, the top keys and units per day, from the usage ledger,
 * the key store and the per-day history; as a table, JSON, or a self-contained HTML file.
 */
export async function report(
  ctx: CommandContext,
  options: CommandOptions,
  ledgerDir: string,
  smtp: () => { smtpUrl: string | undefined; from: string | undefined } = () => ({ smtpUrl: undefined, from: undefined }),
): Promise<void> {
  const current = ledgerMonth(ctx.now / 1000);
  const month = parseMonth(options.month) ?? current;
  if (month > current) throw new UsageError(`--month: "${month}" is in the future`);
  const htmlPath = options.html === undefined ? undefined : htmlTarget(options.html);
  const email = options.email === undefined && options['dry-run'] === undefined ? undefined : emailTarget(options, smtp());

  if (!ledgerMonths(ledgerDir).includes(month)) ctx.note(`the ledger in ${ledgerDir} has no file for ${month}: no units that month\n`);
  let entries = await readLedgerEntries(ctx, ledgerDir, [month]);
  const { records: all, history } = await withStore(ctx, false, async (store, opened) => ({
    records: await store.list(),
    history: await readHistory(ctx, opened, month),
  }));
  let records = all;
  if (options.owner !== undefined) {
    records = all.filter((r) => r.owner === options.owner);
    entries = entries.filter((e) => e.owner === options.owner);
    if (records.length === 0 && entries.length === 0)
      throw new CommandError(`no keys belong to "${options.owner}" and the ledger has no usage of it in ${month}`);
  }
  const data = buildReport({ month, nowMs: ctx.now, owner: options.owner, records, entries, history });
  if (email) {
    const lines = await emailSummaries(ctx, email, { month, records, entries, history });
    if (ctx.json) return print(ctx, { sent: lines.map((l) => l.split('\t')) });
    return ctx.out(lines.map((l) => `${l}\n`).join(''));
  }

  if (htmlPath !== undefined) {
    await writeHtml(htmlPath, renderHtml(data));
    if (!ctx.json) return ctx.out(`${htmlPath}\n`);
    ctx.note(`Wrote ${htmlPath}\n`);
  }
  if (ctx.json) return print(ctx, data);
  ctx.out(renderText(data));
}

interface EmailTarget {
  from: string;
  target: { smtpUrl: string } | { dryRunDir: string };
}

/** The --email settings, checked before any work is done. */
function emailTarget(options: CommandOptions, smtp: { smtpUrl: string | undefined; from: string | undefined }): EmailTarget {
  if (options.email !== 'all') throw new UsageError('--dry-run goes with --email (report --email --dry-run DIR)');
  if (options.html !== undefined) throw new UsageError('--email and --html are two different outputs; give one');
  const dir = options['dry-run'];
  if (dir !== undefined) {
    if (dir.trim() === '') throw new UsageError('--dry-run: the directory is empty');
    return { from: smtp.from ?? 'daymind-keys <daymind-keys@localhost>', target: { dryRunDir: dir } };
  }
  if (smtp.smtpUrl === undefined) throw new UsageError('report --email needs SMTP_URL (or --dry-run DIR to write the messages to files)');
  if (smtp.from === undefined) throw new UsageError('report --email needs SMTP_FROM, the From address of the summaries');
  return { from: smtp.from, target: { smtpUrl: smtp.smtpUrl } };
}

/** Each owner's summary to the addresses of its keys (meta.email); owners without one are named on stderr. */
async function emailSummaries(ctx: CommandContext, email: EmailTarget, input: Omit<ReportInput, 'nowMs'>): Promise<string[]> {
  const byOwner = new Map<string, KeyRecord[]>();
  for (const r of input.records) byOwner.set(r.owner, [...(byOwner.get(r.owner) ?? []), r]);
  const plans = ctx.plans.forView(ctx.note);
  const mails: SummaryMail[] = [];
  const without: string[] = [];
  for (const [owner, records] of [...byOwner].sort(([a], [b]) => a.localeCompare(b))) {
    const to = ownerAddresses(records);
    if (to.length === 0) {
      without.push(owner);
      continue;
    }
    const entries = input.entries.filter((e) => e.owner === owner);
    const data = buildReport({ ...input, nowMs: ctx.now, owner, records, entries });
    mails.push(composeSummary(data, records, to, ctx.now, plans, (r) => statusText(r, ctx.now)));
  }
  if (without.length > 0)
    ctx.note(`daymind-keys: no email address (create/set --email) for ${without.join(', ')}: no summary sent to them\n`);
  if (mails.length === 0)
    throw new CommandError('no key of these owners has an email address (set one with daymind-keys set KEY --email ADDRESS)');
  return deliverSummaries(mails, input.month, email.from, email.target);
}

/** The --html file as an absolute path, checked before any work is done. */
function htmlTarget(path: string): string {
  if (path.trim() === '') throw new UsageError('--html: the path is empty');
  const target = resolve(path);
  const dir = dirname(target);
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new CommandError(`cannot write the report ${target}: the directory ${dir} does not exist`);
  try {
    if (statSync(target).isDirectory()) throw new CommandError(`cannot write the report ${target}: it is a directory`);
  } catch (err) {
    if (err instanceof CommandError) throw err;
  }
  return target;
}

/** Writes the file whole or not at all: a temporary file beside it, fsynced, renamed over it. */
async function writeHtml(path: string, html: string): Promise<void> {
  try {
    await writeAtomic(path, html);
  } catch (err) {
    throw new CommandError(`cannot write the report ${path}: ${describeError(err)}`);
  }
}

/**
 * Rate-limited requests per day and key, for the days of the month that the per-day history
 * keeps (up to today, within its retention); undefined when the store keeps no history.
 */
async function readHistory(ctx: CommandContext, opened: AdminStore, month: string): Promise<ReportInput['history'] | undefined> {
  const history = historyOf(opened);
  if (!history) return undefined;
  const first = isoDay(dayOffset(ctx.now, -(HISTORY_RETENTION_DAYS - 1)));
  const today = isoDay(dayOffset(ctx.now, 0));
  const days = monthDays(month).filter((d) => d >= first && d <= today);
  const counts = new Map<string, Map<string, number>>();
  const missing: string[] = [];
  let problem = '';
  for (const day of days) {
    try {
      const number = Number(day.replace(/-/g, ''));
      const byKey = (await history.readDays([number])).get(number) ?? new Map();
      counts.set(day, new Map([...byKey].map(([hash, c]) => [hash, c.rate_limited])));
    } catch (err) {
      missing.push(day);
      problem ||= describeError(err);
    }
  }
  if (missing.length > 0) ctx.note(`left out the rate-limited counts of ${missing.join(', ')}: ${problem}\n`);
  return { missing, counts };
}

/** The per-day history beside a JSON store, when the servers keep one. */
function historyOf(opened: AdminStore): UsageHistory | undefined {
  if (!(opened.store instanceof JsonFileKeyStore)) return opened.redisHistory;
  const dir = historyDirFor(opened.store.path);
  try {
    if (!statSync(dir).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  return new FileUsageHistory({ dir });
}

const n = (value: number | null): string => (value === null ? '-' : String(value));
const ownerCell = (owner: string): string => (owner === '' ? '(no owner)' : owner);

function renderText(data: Report): string {
  const { totals } = data;
  const lines = [
    `API usage, ${monthTitle(data.month)} (UTC), as of ${data.generated_at.slice(0, 19).replace('T', ' ')} UTC`,
    `${totals.units} units in the month (ledger), ${totals.owners} owner(s), ${totals.keys_with_usage} of ${totals.keys} key(s) used; ` +
      `rate-limited: ${data.history ? `${totals.rate_limited} (${data.history.from} to ${data.history.to})` : 'no per-day history'}`,
    '',
  ];
  const owners = renderTable(
    ['OWNER', 'KEYS', 'UNITS', 'RATE-LIMITED', 'USAGE', 'TODAY'],
    data.owners.map((o) => [
      ownerCell(o.owner),
      String(o.keys),
      String(o.units),
      n(o.rate_limited),
      String(o.usage_count),
      String(o.requests_today),
    ]),
  );
  const keys =
    data.top_keys.length === 0
      ? 'No key has units this month.\n'
      : renderTable(
          ['PREFIX', 'OWNER', 'STATUS', 'UNITS', 'RATE-LIMITED', 'USAGE', 'TODAY'],
          data.top_keys.map((k) => [
            k.key_prefix,
            ownerCell(k.owner),
            k.status,
            String(k.units),
            n(k.rate_limited),
            n(k.usage_count),
            n(k.requests_today),
          ]),
        );
  return `${lines.join('\n')}\n${owners}\nTop keys by units:\n${keys}`;
}
