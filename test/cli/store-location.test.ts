import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers';
import { cli } from './run';

describe('daymind-keys in the wrong directory', () => {
  test('a command that creates the store says so with its absolute path; one that reads a missing store exits 1 naming it', async () => {
    const dir = tempDir();
    const store = join(dir, 'keys', 'api_keys.json');
    const listed = await cli(['--store', store, 'list']);
    expect(listed).toMatchObject({ code: 1, stdout: '', stderr: `daymind-keys: there is no key store at ${store}\n` });
    expect(existsSync(store)).toBe(false);
    const created = await cli(['--store', store, 'create', 'acme']);
    expect(created.code).toBe(0);
    expect(created.stderr.split('\n')[0]).toBe(`daymind-keys: created a new key store at ${store}`);
    // The next one finds it: no note.
    const second = await cli(['--store', store, 'create', 'beta']);
    expect(second.stderr).not.toMatch(/created a new key store/);
  });
});
