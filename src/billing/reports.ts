import { createHash } from 'node:crypto';
import type { KeyRecord, UsageDelta } from '../store/types';
import type { UsageReport } from './types';

/** The identifier of one key's report in one usage batch: the same batch always gives the same. */
export function reportIdentifier(batchId: string, keyHash: string): string {
  return 'dmu_' + createHash('sha256').update(`${batchId}:${keyHash}`).digest('hex').slice(0, 40);
}

/**
 * One report per key of an applied usage batch. A key the store no longer has is not billed (the
 * store dropped its usage too); when the store cannot answer, the report goes out without owner.
 */
export async function reportsFor(
  batchId: string,
  deltas: UsageDelta[],
  window: { start: number; end: number },
  recordOf: (keyHash: string) => KeyRecord | undefined | Promise<KeyRecord | undefined>,
): Promise<UsageReport[]> {
  const reports: UsageReport[] = [];
  for (const delta of deltas) {
    let record: KeyRecord | undefined;
    try {
      const found = recordOf(delta.key_hash);
      record = found instanceof Promise ? await found : found;
      if (!record) continue;
    } catch {
      record = undefined;
    }
    reports.push({
      identifier: reportIdentifier(batchId, delta.key_hash),
      key_hash: delta.key_hash,
      key_prefix: record?.key_prefix ?? '',
      owner: record?.owner ?? '',
      customer_id: record?.stripe_customer_id ?? null,
      quantity: delta.units,
      window_start: window.start,
      window_end: window.end,
    });
  }
  return reports;
}
