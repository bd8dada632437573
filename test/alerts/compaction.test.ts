import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { alertId } from '../../src/alerts/detect';
import { FileAlertLog } from '../../src/alerts/log-file';
import type { AlertEvent } from '../../src/alerts/types';
import { tempDir, TEST_NOW } from '../helpers';

const URL = 'http://127.0.0.1:1/hooks';
const month = (ms: number) => Number(new Date(ms).toISOString().slice(0, 7).replace('-', ''));
const THIS_MONTH = month(TEST_NOW);
const LAST_MONTH = month(TEST_NOW - 40 * 86_400_000);

function quotaEvent(key: string, period: number): AlertEvent {
  return {
    id: alertId(key, 'quota.threshold', 80, period),
    type: 'quota.threshold',
    timestamp: new Date(TEST_NOW).toISOString(),
    data: { key_prefix: key.slice(0, 9), key_hash: key, owner: 'acme', threshold: 80, period, used: 8, limit: 10 },
  };
}

describe('the alerts file is compacted to what is still needed', () => {
  test('delivered alerts of past periods go; pending ones and those of the current period stay; another process reads the new file', async () => {
    const path = join(tempDir(), 'api_keys.json.alerts');
    const errors: Error[] = [];
    const a = new FileAlertLog(path, (e) => errors.push(e), 4096);
    const b = new FileAlertLog(path, (e) => errors.push(e), 4096);
    const old = Array.from({ length: 40 }, (_, i) => quotaEvent(`old${i}x`.padEnd(64, '0'), LAST_MONTH));
    const current = quotaEvent('current'.padEnd(64, '0'), THIS_MONTH);
    const pendingOld = quotaEvent('pending'.padEnd(64, '0'), LAST_MONTH);
    expect(await a.claim([...old, current, pendingOld])).toHaveLength(42);
    await a.delivered(
      [...old, current].map((e) => e.id),
      URL,
      [URL],
    );
    expect(await b.pending([URL])).toEqual([{ event: pendingOld, deliveredTo: new Set() }]);
    const before = statSync(path);
    await a.tidy([URL], TEST_NOW);
    const after = statSync(path);
    expect(after.ino).not.toBe(before.ino);
    expect(after.size).toBeLessThan(before.size / 10);
    expect(
      readFileSync(path, 'utf8')
        .trim()
        .split('\n')
        .map((l) => Object.keys(JSON.parse(l))[0]),
    ).toEqual(['claim', 'claim', 'delivered']);
    // The other process sees the new file: the current alert is still claimed, the pending one still pending.
    expect(await b.claim([current])).toEqual([]);
    expect((await b.pending([URL])).map((p) => p.event.id)).toEqual([pendingOld.id]);
    await b.delivered([pendingOld.id], URL, [URL]);
    expect(await a.pending([URL])).toEqual([]);
    expect(errors).toEqual([]);
  });

  test('a file with a damaged line is never rewritten', async () => {
    const path = join(tempDir(), 'api_keys.json.alerts');
    const errors: Error[] = [];
    const log = new FileAlertLog(path, (e) => errors.push(e), 1024);
    const old = Array.from({ length: 20 }, (_, i) => quotaEvent(`old${i}x`.padEnd(64, '0'), LAST_MONTH));
    await log.claim(old.slice(0, 10));
    appendFileSync(path, 'not json\n');
    await log.claim(old.slice(10));
    await log.delivered(
      old.map((e) => e.id),
      URL,
      [URL],
    );
    const bytes = readFileSync(path);
    await log.tidy([URL], TEST_NOW);
    expect(readFileSync(path)).toEqual(bytes);
    expect(errors.map((e) => e.message)).toEqual([`the alerts file ${path} has a damaged line 11; it is skipped and left as it is`]);
  });
});
