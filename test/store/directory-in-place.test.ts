/**
 * A directory put where the JSON store file was, while a server runs: its reload reports what
 * start-up reports (EISDIR, "cannot read"), not a corrupt file, keeps the last good state, and
 * takes a file put back.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonFileKeyStore, StoreError } from '../../src';
import { tempDir, waitFor } from '../helpers';

describe('JsonFileKeyStore with a directory in place of its file', () => {
  test('the reload reports EISDIR as start-up does, once, and keeps serving the keys it had', async () => {
    const path = join(tempDir(), 'api_keys.json');
    const errors: Error[] = [];
    const store = new JsonFileKeyStore({ path, reloadIntervalMs: 20, onError: (err) => errors.push(err) });
    try {
      await store.init();
      const { record } = await store.create({ owner: 'acme' });
      rmSync(path);
      mkdirSync(path);

      let atStartUp: unknown;
      try {
        new JsonFileKeyStore({ path });
      } catch (err) {
        atStartUp = err;
      }
      expect(atStartUp).toBeInstanceOf(StoreError);
      expect((atStartUp as StoreError).message).toBe(`cannot read the key store ${path}: EISDIR: illegal operation on a directory, read`);

      await waitFor(() => errors.length > 0, 5000);
      await new Promise((r) => setTimeout(r, 200)); // ten more reloads
      expect(errors.map((e) => [(e as StoreError).code, e.message, (e as StoreError).path])).toEqual([
        [(atStartUp as StoreError).code, (atStartUp as StoreError).message, path],
      ]);
      expect(store.get(record.key_hash)?.owner).toBe('acme');

      rmSync(path, { recursive: true });
      writeFileSync(path, '[]\n');
      await waitFor(() => store.get(record.key_hash) === undefined, 5000);
      expect(errors).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});
