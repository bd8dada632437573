/**
 * What docs/how-it-works.md says of a usage journal left by a process that crashed (a real child
 * process, killed with SIGKILL after its append): a process that stops cleanly without appending
 * to it leaves it beside the file, whose readers still count it; the next server on the store
 * folds it once it is foldAfterMs old.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { JsonFileKeyStore } from '../../src';
import { childEnv, tempDir, waitFor } from '../helpers';

const DIST = resolve(__dirname, '../../dist/cjs');
const JOURNAL = { minStoreBytes: 0, foldAfterMs: 300 };

/** A process that appends 5 units of every key to the journal and is killed before it can fold. */
const CRASHING = `
const { JsonFileKeyStore } = require(${JSON.stringify(DIST)});
const store = new JsonFileKeyStore({ path: process.argv[1], reloadIntervalMs: 0, usageJournal: ${JSON.stringify(JOURNAL)} });
store
  .list()
  .then((records) => store.applyUsage(records.map((r) => ({ key_hash: r.key_hash, units: 5, last_used: 1795550000, days: [{ day: 20261125, units: 5 }] }))))
  .then(() => process.kill(process.pid, 'SIGKILL'));
`;

const usageOnDisk = (path: string): number[] =>
  (JSON.parse(readFileSync(path, 'utf8')) as Array<{ usage_count: number }>).map((r) => r.usage_count);

test('a journal a crashed process left: kept by a clean stop that never appended to it, folded by the next server', async () => {
  const path = join(tempDir(), 'api_keys.json');
  const journal = `${path}.journal`;
  const seed = new JsonFileKeyStore({ path });
  const { record } = await seed.create({ owner: 'acme' });
  await seed.close();

  const crashed = spawnSync(process.execPath, ['-e', CRASHING, path], { env: childEnv(), encoding: 'utf8' });
  expect([crashed.signal, crashed.stderr]).toEqual(['SIGKILL', '']);
  expect(existsSync(journal)).toBe(true);
  const fileAlone = readFileSync(path);
  expect(usageOnDisk(path)).toEqual([0]);

  // Starts, reads (file and journal) and stops cleanly, with no usage of its own.
  const quiet = new JsonFileKeyStore({ path, reloadIntervalMs: 0, usageJournal: JOURNAL });
  expect(quiet.get(record.key_hash)?.usage_count).toBe(5);
  await quiet.close();
  expect(existsSync(journal)).toBe(true);
  expect(readFileSync(path)).toEqual(fileAlone);
  const reader = new JsonFileKeyStore({ path, reloadIntervalMs: 0, usageJournal: JOURNAL });
  expect(reader.get(record.key_hash)?.usage_count).toBe(5);
  await reader.close();

  // A server on the store folds it at its first check after the journal is foldAfterMs old.
  const server = new JsonFileKeyStore({ path, reloadIntervalMs: 20, usageJournal: JOURNAL });
  await server.init();
  await waitFor(() => !existsSync(journal), 5000);
  await server.close();
  expect(usageOnDisk(path)).toEqual([5]);
});
