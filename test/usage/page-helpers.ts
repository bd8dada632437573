import { readFileSync, writeFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { hashKey } from '../../src/keys';
import type { KeyRecord } from '../../src/store/types';
import { dayOffset, type HistoryEntry } from '../../src/usage/history';
import { FileUsageHistory, historyDirFor } from '../../src/usage/history-file';

/* Helpers of the usage page's browser tests: seeded history, and reading the page. */

/**
 * Gives the key 29 days of history before today (weekdays busier than weekends, a few days with
 * 429s) and a record that agrees: created 40 days ago, its usage count the sum of those days.
 */
export async function seedPastUsage(store: string, key: string): Promise<HistoryEntry[]> {
  const keyHash = hashKey(key);
  const now = Date.now();
  const entries: HistoryEntry[] = [];
  for (let ago = 29; ago >= 1; ago--) {
    const weekday = new Date(now - ago * 86_400_000).getUTCDay();
    const allowed = (weekday === 0 || weekday === 6 ? 180 : 520) + Math.round(120 * Math.sin(ago / 4)) + ((ago * 37) % 90);
    const rate_limited = ago % 6 === 2 ? 15 + ((ago * 13) % 40) : 0;
    entries.push({ key_hash: keyHash, day: dayOffset(now, -ago), allowed, rate_limited });
  }
  await new FileUsageHistory({ dir: historyDirFor(store) }).add(entries);
  const records = JSON.parse(readFileSync(store, 'utf8')) as KeyRecord[];
  const record = records.find((r) => r.key_hash === keyHash)!;
  Object.assign(record, { created_at: Math.floor(now / 1000) - 40 * 86_400, usage_count: entries.reduce((n, e) => n + e.allowed, 0) });
  writeFileSync(store, JSON.stringify(records, null, 2));
  return entries;
}

/** Pastes the key, submits, and returns the page's own /v1/usage response (status and body). */
export async function submitKey(page: Page, key: string): Promise<{ status: number; body: unknown }> {
  await page.fill('#key-input', key);
  const response = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/usage');
  await page.click('#key-submit');
  const res = await response;
  return { status: res.status(), body: await res.json() };
}

export async function field(page: Page, selector: string): Promise<{ value: string | null; text: string }> {
  const node = page.locator(selector).first();
  return { value: await node.getAttribute('data-value'), text: (await node.textContent()) ?? '' };
}

/** Each `days` element's data-day, then the data-value of each of its `cells`, as numbers. */
export function dayNumbers(page: Page, days: string, cells: string): Promise<unknown[][]> {
  return page
    .locator(days)
    .evaluateAll(
      (nodes, sel) =>
        nodes.map((n) => [n.getAttribute('data-day'), ...[...n.querySelectorAll(sel)].map((c) => Number(c.getAttribute('data-value')))]),
      cells,
    );
}

export const digits = (text: string): string => text.replace(/[^0-9]/g, '');
