import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describeError } from '../errors';
import { loadPeer } from '../internal/peer';
import { creditsAt, monthUsage } from '../store/record';
import type { KeyRecord } from '../store/types';
import { todayCount } from './commands';
import { CommandError } from './errors';
import { quotaOf, type Plans } from './plans';
import type { Report } from './report-data';
import { escapeHtml, monthTitle } from './report-html';

/** One owner's summary, ready to send. */
export interface SummaryMail {
  owner: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
}

/** The addresses of an owner: the distinct `meta.email` of its keys. */
export function ownerAddresses(records: KeyRecord[]): string[] {
  const found = new Set<string>();
  for (const r of records) {
    const email = r.meta?.email;
    if (typeof email === 'string' && email.trim() !== '') found.add(email.trim());
  }
  return [...found].sort();
}

interface KeyLine {
  prefix: string;
  status: string;
  month: number;
  quota: number | null;
  quotaLeft: number | null;
  credits: number | null;
  usage: number;
  today: number;
}

function keyLines(records: KeyRecord[], nowMs: number, plans: Plans | undefined, statusOf: (r: KeyRecord) => string): KeyLine[] {
  return records
    .map((r) => {
      const quota = quotaOf(r, plans);
      const month = monthUsage(r, nowMs);
      return {
        prefix: r.key_prefix,
        status: statusOf(r),
        month,
        quota,
        quotaLeft: quota === null ? null : Math.max(0, quota - month),
        credits: creditsAt(r, nowMs) ?? null,
        usage: r.usage_count,
        today: todayCount(r, nowMs),
      };
    })
    .sort((a, b) => b.month - a.month || b.usage - a.usage || a.prefix.localeCompare(b.prefix));
}

const dash = (n: number | null): string => (n === null ? '-' : String(n));

/** Units per day as text bars (the plain-text part's chart). */
function textChart(days: Report['owners'][number]['days']): string {
  const max = Math.max(1, ...days.map((d) => d.units));
  return days.map((d) => `${d.day.slice(8)} ${'#'.repeat(Math.round((d.units / max) * 40)).padEnd(40)} ${d.units}`).join('\n');
}

/** Units per day as an SVG bar chart, styled by attributes (mail programs drop style sheets). */
function svgChart(days: Report['owners'][number]['days'], title: string): string {
  const W = 620;
  const H = 160;
  const max = Math.max(1, ...days.map((d) => d.units));
  const band = (W - 40) / days.length;
  const bars = days
    .map((d, i) => {
      if (d.units <= 0) return '';
      const h = Math.max(1, (d.units / max) * (H - 40));
      return `<rect x="${(40 + i * band + band * 0.15).toFixed(1)}" y="${(H - 20 - h).toFixed(1)}" width="${(band * 0.7).toFixed(1)}" height="${h.toFixed(1)}" fill="#1f6feb"><title>${d.day}: ${d.units} units</title></rect>`;
    })
    .join('');
  const labels = days
    .map((d, i) =>
      i % 7 === 0
        ? `<text x="${(40 + i * band + band / 2).toFixed(1)}" y="${H - 4}" font-size="11" text-anchor="middle" fill="#57606a">${Number(d.day.slice(8))}</text>`
        : '',
    )
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(title)}">` +
    `<line x1="40" x2="${W}" y1="${H - 20}" y2="${H - 20}" stroke="#d0d7de"/>` +
    `<text x="34" y="24" font-size="11" text-anchor="end" fill="#57606a">${max}</text>${bars}${labels}</svg>`
  );
}

/**
 * The month's summary of one owner: units in the month (ledger), requests all-time and today
 * (the figures of `daymind-keys usage`), each key with its month's units, quota and credits left,
 * and the units per day as a chart (SVG in the HTML part, text bars in the plain part).
 */
export function composeSummary(
  report: Report,
  records: KeyRecord[],
  to: string[],
  nowMs: number,
  plans: Plans | undefined,
  statusOf: (r: KeyRecord) => string,
): SummaryMail {
  const owner = report.owners[0]!;
  const title = monthTitle(report.month);
  const keys = keyLines(records, nowMs, plans, statusOf);
  const subject = `API usage for ${owner.owner}, ${title}`;
  const summary = [
    `Units in ${title}: ${owner.units}`,
    `Requests, all time: ${owner.usage_count}`,
    `Requests today: ${owner.requests_today}`,
    `Rate-limited in ${title}: ${dash(owner.rate_limited)}`,
    `Keys: ${owner.keys}`,
  ];
  const header = ['KEY', 'STATUS', 'MONTH', 'QUOTA LEFT', 'CREDITS LEFT', 'ALL TIME', 'TODAY'];
  const rows = keys.map((k) => [
    k.prefix,
    k.status,
    String(k.month),
    k.quota === null ? '-' : `${k.quotaLeft} of ${k.quota}`,
    dash(k.credits),
    String(k.usage),
    String(k.today),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const text =
    `${subject}\n\n${summary.join('\n')}\n\n${[line(header), ...rows.map(line)].join('\n')}\n\n` +
    `Units per day (UTC):\n${textChart(owner.days)}\n\nAs of ${report.generated_at.slice(0, 16).replace('T', ' ')} UTC.\n`;
  const cell = (c: string, right = false) =>
    `<td style="padding:4px 8px;border-bottom:1px solid #d0d7de${right ? ';text-align:right' : ''}">${escapeHtml(c)}</td>`;
  const html =
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>` +
    `<body style="font-family:system-ui,Arial,sans-serif;color:#1b1f24;margin:16px">` +
    `<h1 style="font-size:20px">${escapeHtml(subject)}</h1>` +
    `<ul>${summary.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>` +
    `<table style="border-collapse:collapse"><thead><tr>${header.map((h) => `<th style="padding:4px 8px;text-align:left">${h}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c, i) => cell(c, i >= 2)).join('')}</tr>`).join('')}</tbody></table>` +
    `<h2 style="font-size:16px">Units per day (UTC)</h2>${svgChart(owner.days, `Units per day in ${title}`)}` +
    `<p style="color:#57606a">As of ${escapeHtml(report.generated_at.slice(0, 16).replace('T', ' '))} UTC.</p></body></html>`;
  return { owner: owner.owner, to, subject, text, html };
}

interface NodemailerLike {
  createTransport(options: unknown): {
    sendMail(message: Record<string, unknown>): Promise<{ message?: Buffer | string; messageId?: string }>;
    close?(): void;
  };
}

const loadNodemailer = (): NodemailerLike =>
  loadPeer<NodemailerLike>(
    'nodemailer',
    (cause) => `report --email needs the optional peer dependency nodemailer (npm install nodemailer): ${cause}`,
  );

/** A file name for an owner's message: its name made safe, and the month. */
export function emlName(month: string, owner: string, index: number): string {
  const safe = owner.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 60) || 'owner';
  return `${month}-${String(index + 1).padStart(3, '0')}-${safe}.eml`;
}

/**
 * Sends the summaries through SMTP (`smtpUrl`), or with `dryRunDir` writes each as an .eml file
 * there (built by nodemailer exactly as it would be sent). Answers one line per message.
 */
export async function deliverSummaries(
  mails: SummaryMail[],
  month: string,
  from: string,
  target: { smtpUrl: string } | { dryRunDir: string },
): Promise<string[]> {
  const nodemailer = loadNodemailer();
  const dryRun = 'dryRunDir' in target;
  const transport = nodemailer.createTransport(dryRun ? { streamTransport: true, buffer: true, newline: 'unix' } : target.smtpUrl);
  const dir = dryRun ? resolve(target.dryRunDir) : '';
  if (dryRun) mkdirSync(dir, { recursive: true });
  const lines: string[] = [];
  try {
    for (const [i, mail] of mails.entries()) {
      const message = { from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html };
      let info;
      try {
        info = await transport.sendMail(message);
      } catch (err) {
        throw new CommandError(`cannot send the summary of "${mail.owner}" to ${mail.to.join(', ')}: ${describeError(err)}`);
      }
      if (dryRun) {
        const path = join(dir, emlName(month, mail.owner, i));
        writeFileSync(path, info.message ?? '');
        lines.push(`${path}\t${mail.to.join(', ')}`);
      } else lines.push(`sent\t${mail.owner}\t${mail.to.join(', ')}`);
    }
  } finally {
    transport.close?.();
  }
  return lines;
}
