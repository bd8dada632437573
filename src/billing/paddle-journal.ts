import { statSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { writeAtomic } from '../internal/fs/file-io';
import { appendLines } from './jsonl';

/** A charge recorded before it is sent to Paddle. */
export interface PaddleCharge {
  /** The usage report it bills. */
  report: string;
  subscription: string;
  price: string;
  quantity: number;
  /**
   * What the subscription's next renewal held of the price just before the call: the billing
   * period it bills (null: none) and the units on it. A charge is found again by comparing.
   */
  period: string | null;
  before: number;
  /** Unix ms when it was recorded. */
  at: number;
}

type Line = { charging: PaddleCharge } | { charged: string } | { void: string };

/**
 * The record of Paddle charges, a JSONL file in the ledger directory: `{"charging": ...}` before a
 * call, `{"charged": id}` once Paddle has it, `{"void": id}` once it is known not to have been
 * made. A charge with neither after it is uncertain: its outcome is looked up at Paddle before
 * anything else is charged to that subscription and price. Only the process holding the billing
 * delivery lock writes it; every process reads it again when it changed.
 */
export class PaddleJournal {
  private readonly charging = new Map<string, PaddleCharge>();
  private readonly charged = new Set<string>();
  private known: { ino: number; size: number } | undefined;
  /** Lines that are not the journal's (a line a crash cut short, or damage). */
  damaged: Array<{ line: number; text: string }> = [];
  readonly quarantinePath: string;

  constructor(readonly path: string) {
    this.quarantinePath = `${path}.quarantine`;
  }

  /** Reads the file again when it changed since it was last read or written here. */
  async refresh(): Promise<void> {
    let stat: { ino: number; size: number };
    try {
      stat = await fsp.stat(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.reset();
      return;
    }
    if (this.known && this.known.ino === stat.ino && this.known.size === stat.size) return;
    const text = await fsp.readFile(this.path, 'utf8');
    this.reset();
    const lines = text.split('\n');
    // The last piece is empty, or a line cut short by a crash that is still being the last: it counts for nothing.
    for (let i = 0; i < lines.length - 1; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      if (!this.apply(line)) this.damaged.push({ line: i + 1, text: line });
    }
    this.known = { ino: stat.ino, size: Buffer.byteLength(text) };
  }

  private reset(): void {
    this.charging.clear();
    this.charged.clear();
    this.damaged = [];
    this.known = undefined;
  }

  private apply(text: string): boolean {
    let line: Partial<Record<string, unknown>>;
    try {
      line = JSON.parse(text) as Partial<Record<string, unknown>>;
    } catch {
      return false;
    }
    if (typeof line !== 'object' || line === null) return false;
    const charge = line.charging as PaddleCharge | undefined;
    if (charge !== undefined) {
      if (typeof charge?.report !== 'string' || typeof charge.subscription !== 'string' || typeof charge.price !== 'string') return false;
      if (!Number.isSafeInteger(charge.quantity) || !Number.isSafeInteger(charge.before) || typeof charge.at !== 'number') return false;
      if (!this.charged.has(charge.report)) this.charging.set(charge.report, charge);
      return true;
    }
    if (typeof line.charged === 'string') {
      this.charging.delete(line.charged);
      this.charged.add(line.charged);
      return true;
    }
    if (typeof line.void === 'string') {
      this.charging.delete(line.void);
      return true;
    }
    return false;
  }

  /** Whether the report's charge is known to be Paddle's. */
  isCharged(report: string): boolean {
    return this.charged.has(report);
  }

  /** The uncertain charges of a subscription and price, oldest first. */
  uncertain(subscription: string, price: string): PaddleCharge[] {
    return [...this.charging.values()].filter((c) => c.subscription === subscription && c.price === price).sort((a, b) => a.at - b.at);
  }

  get bytes(): number {
    return this.known?.size ?? 0;
  }

  async write(line: Line): Promise<void> {
    await appendLines(this.path, [JSON.stringify(line)]);
    this.apply(JSON.stringify(line));
    // Read whole again next time (the file is kept small by compact()).
    this.known = undefined;
  }

  /**
   * Rewrites the file with the uncertain charges and the charges whose report `keep` still
   * wants (a report the outbox has not acknowledged yet). Damaged lines are first copied to the
   * quarantine file beside it; returns them.
   */
  async compact(keep: (report: string) => boolean): Promise<Array<{ line: number; text: string }>> {
    const damaged = this.damaged;
    if (damaged.length > 0)
      await appendLines(
        this.quarantinePath,
        damaged.map((d) => d.text),
      );
    const lines: string[] = [];
    for (const charge of this.charging.values()) lines.push(JSON.stringify({ charging: charge }) + '\n');
    for (const report of this.charged) if (keep(report)) lines.push(JSON.stringify({ charged: report }) + '\n');
    await writeAtomic(this.path, lines);
    const kept = [...this.charged].filter(keep);
    this.charged.clear();
    for (const report of kept) this.charged.add(report);
    this.damaged = [];
    const { ino, size } = statSync(this.path);
    this.known = { ino, size };
    return damaged;
  }
}
