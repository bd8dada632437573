/**
 * What docs/how-it-works.md says of a usage journal an earlier version left (a process killed
 * before it folded its journal into the file): a process that only reads the store counts it and
 * leaves it beside the file; the next server on the store (its reload timer) or the next write
 * takes it into the file and removes it.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonFileKeyStore } from '../../src';
import { journalHeader, journalLine } from '../../src/store/json/leftover-journal';
import { tempDir, waitFor } from '../helpers';

const usageOnDisk = (path: string): number[] =>
  (JSON.parse(readFileSync(path, 'utf8')) as Array<{ usage_count: number }>).map((r) => r.usage_count);

/** The journal an earlier version would have left for the store file as it is now: 5 units of `hash`. */
function leaveJournal(path: string, hash: string): void {
  const stat = statSync(path, { bigint: true });
  const line = journalLine([{ key_hash: hash, units: 5, last_used: 1795550000, days: [{ day: 20261125, units: 5 }] }]);
  writeFileSync(`${path}.journal`, journalHeader(`${stat.ino}:${stat.size}:${stat.mtimeNs}`, 1795550000000) + line);
}

test("an earlier version's journal: counted and kept by a process that only reads, folded by the next server", async () => {
  const path = join(tempDir(), 'api_keys.json');
  const journal = `${path}.journal`;
  const seed = new JsonFileKeyStore({ path });
  const { record } = await seed.create({ owner: 'acme' });
  await seed.close();
  leaveJournal(path, record.key_hash);
  const fileAlone = readFileSync(path);

  // Starts, reads (file and journal) and stops cleanly, with no write of its own.
  const quiet = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
  expect(quiet.get(record.key_hash)?.usage_count).toBe(5);
  await quiet.close();
  expect(existsSync(journal)).toBe(true);
  expect(readFileSync(path)).toEqual(fileAlone);

  // A server on the store folds it at its first check.
  const server = new JsonFileKeyStore({ path, reloadIntervalMs: 20 });
  await server.init();
  await waitFor(() => !existsSync(journal), 5000);
  expect(server.get(record.key_hash)?.usage_count).toBe(5);
  await server.close();
  expect(usageOnDisk(path)).toEqual([5]);
});

test("an earlier version's journal is taken in by the next write, once, and one naming an older file is not", async () => {
  const path = join(tempDir(), 'api_keys.json');
  const store = new JsonFileKeyStore({ path, reloadIntervalMs: 0 });
  const { record } = await store.create({ owner: 'acme' });
  leaveJournal(path, record.key_hash);
  const delta = { key_hash: record.key_hash, units: 1, last_used: 1795550000, days: [{ day: 20261125, units: 1 }] };
  await store.applyUsage([delta]);
  expect(existsSync(`${path}.journal`)).toBe(false);
  expect(usageOnDisk(path)).toEqual([6]);
  // A journal naming the file as it was before (its usage is in the file already) is ignored, then removed.
  writeFileSync(`${path}.journal`, journalHeader('1:2:3', 1795550000000) + journalLine([delta]));
  await store.applyUsage([delta]);
  expect(store.get(record.key_hash)?.usage_count).toBe(7);
  expect(existsSync(`${path}.journal`)).toBe(false);
  await store.close();
  expect(usageOnDisk(path)).toEqual([7]);
});
