import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonl } from '../billing/jsonl';
import { Outbox } from '../billing/outbox';
import type { DeadLetter } from '../billing/rejection';
import type { UsageReport } from '../billing/types';
import { print, type CommandContext } from './commands';
import { CommandError } from './errors';

/** How many reports and dead letters the text output lists (all of them with --json). */
const LISTED = 20;

const iso = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
const units = (reports: Array<{ quantity: number }>): number => reports.reduce((sum, r) => sum + r.quantity, 0);

/**
 * `billing`: what the billing outbox of a ledger directory holds, read without changing it:
 * usage of windows not closed yet, reports waiting for the provider (oldest first), dead letters
 * and damaged lines (in the outbox, and already moved to its quarantine file).
 */
export async function billingStatus(ctx: CommandContext, ledgerDir: string): Promise<void> {
  if (!existsSync(ledgerDir)) throw new CommandError(`cannot read the ledger directory ${ledgerDir}: ENOENT: no such directory`);
  const path = join(ledgerDir, 'billing-outbox.jsonl');
  const outbox = new Outbox(path);
  const { pending, parts } = await outbox.read();
  const open = new Map<number, { keys: Set<string>; units: number }>();
  for (const part of parts) {
    const window = open.get(part.window) ?? { keys: new Set<string>(), units: 0 };
    for (const [hash, [n]] of Object.entries(part.keys)) {
      window.keys.add(hash);
      window.units += n;
    }
    open.set(part.window, window);
  }
  const deadPath = join(ledgerDir, 'billing-dead-letter.jsonl');
  const dead = await readJsonl<DeadLetter>(deadPath);
  const quarantined = existsSync(outbox.quarantinePath) ? statSync(outbox.quarantinePath).size : 0;
  const status = {
    ledger_dir: ledgerDir,
    outbox: { path, bytes: outbox.bytes, damaged_lines: outbox.state.damaged.map((d) => d.line) },
    open_windows: [...open.entries()]
      .sort(([a], [b]) => a - b)
      .map(([start, w]) => ({ window_start: start, keys: w.keys.size, units: w.units })),
    pending: {
      reports: pending.length,
      units: units(pending),
      oldest_usage: pending.length > 0 ? Math.min(...pending.map((r) => r.window_end)) : null,
      list: pending,
    },
    dead_letters: { path: deadPath, reports: dead.length, units: units(dead.map((d) => d.report)), list: dead },
    quarantine: { path: outbox.quarantinePath, bytes: quarantined },
  };
  if (ctx.json) return print(ctx, status);

  const lines = [`Billing in ${ledgerDir}: outbox ${path}, ${outbox.bytes} bytes`];
  const openUnits = status.open_windows.reduce((sum, w) => sum + w.units, 0);
  lines.push(
    status.open_windows.length === 0
      ? 'Open windows: none'
      : `Open windows (not closed into reports yet): ${status.open_windows.length}, ${openUnits} unit(s): ` +
          status.open_windows.map((w) => `${iso(w.window_start)} ${w.keys} key(s) ${w.units} unit(s)`).join('; '),
  );
  const age =
    status.pending.oldest_usage === null
      ? ''
      : `, oldest usage ${iso(status.pending.oldest_usage)} (${Math.round(ctx.now / 1000 - status.pending.oldest_usage)} s ago)`;
  lines.push(`Waiting for delivery: ${pending.length} report(s), ${status.pending.units} unit(s)${age}`);
  for (const r of pending.slice(0, LISTED)) lines.push(`  ${describe(r)}`);
  if (pending.length > LISTED) lines.push(`  ... and ${pending.length - LISTED} more (--json lists them all)`);
  lines.push(`Dead-lettered: ${dead.length} report(s), ${status.dead_letters.units} unit(s)${dead.length > 0 ? ` in ${deadPath}` : ''}`);
  for (const d of dead.slice(-LISTED)) lines.push(`  ${describe(d.report)} at ${iso(d.at)}: ${d.reason}`);
  if (dead.length > LISTED) lines.push(`  (the last ${LISTED} shown; --json lists them all)`);
  if (status.outbox.damaged_lines.length > 0) {
    lines.push(
      `Damaged outbox lines: ${status.outbox.damaged_lines.join(', ')} (the next delivery round moves them to ${outbox.quarantinePath})`,
    );
  }
  if (quarantined > 0)
    lines.push(`Quarantined: ${outbox.quarantinePath}, ${quarantined} bytes of damaged lines, not billed until repaired`);
  ctx.out(lines.join('\n') + '\n');
}

function describe(r: UsageReport): string {
  return `${r.identifier} ${r.quantity} unit(s) of ${r.key_prefix || '(deleted key)'} (${r.owner || 'no owner'}) ${r.customer_id ?? 'no customer'}, window ${iso(r.window_start)}`;
}
