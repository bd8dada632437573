import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, TEST_NOW } from '../helpers';
import { cli, cliAt } from './run';

const run = (store: string, args: string[]) => cliAt(TEST_NOW, ['--store', store, ...args]);

describe('daymind-keys set --owner / --meta, list --owner', () => {
  test('set changes the owner and meta pairs (k= removes one); list --owner keeps one owner', async () => {
    const store = join(tempDir(), 'api_keys.json');
    const created = JSON.parse((await run(store, ['--json', 'create', 'acme', '--meta', 'plan=gold', '--meta', 'team=core'])).stdout);
    await run(store, ['create', 'beta']);
    const set = await run(store, ['--json', 'set', created.key_prefix, '--owner', 'acme-eu', '--meta', 'team=', '--meta', 'region=eu']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ owner: 'acme-eu', meta: { plan: 'gold', region: 'eu' } });
    expect(JSON.parse(set.stdout).meta).not.toHaveProperty('team');
    const raw = (JSON.parse(readFileSync(store, 'utf8')) as Array<{ owner: string; meta?: object }>)[0]!;
    expect(raw).toMatchObject({ owner: 'acme-eu', meta: { plan: 'gold', region: 'eu' } });

    const listed = JSON.parse((await run(store, ['--json', 'list', '--owner', 'acme-eu'])).stdout);
    expect(listed.map((r: { owner: string }) => r.owner)).toEqual(['acme-eu']);
    const table = await run(store, ['list', '--owner', 'beta']);
    expect(table.stdout.trimEnd().split('\n')).toHaveLength(2);
    expect(await run(store, ['list', '--owner', 'nobody'])).toMatchObject({
      code: 1,
      stderr: 'daymind-keys: no keys belong to "nobody"\n',
    });
  });

  test('a bad owner or meta pair is a usage error and leaves the store as it was', async () => {
    const store = join(tempDir(), 'api_keys.json');
    await run(store, ['create', 'acme']);
    const before = readFileSync(store);
    const empty = await run(store, ['set', 'dm_', '--owner', ' ']);
    expect(empty).toMatchObject({ code: 2, stdout: '' });
    expect(empty.stderr).toBe('daymind-keys: --owner: owner must be a non-empty string (see daymind-keys --help)\n');
    expect((await run(store, ['set', 'dm_', '--meta', 'no-equals'])).code).toBe(2);
    expect((await run(store, ['set', 'dm_'])).stderr).toMatch(/set needs at least one of --owner, --meta,/);
    expect(readFileSync(store).equals(before)).toBe(true);
  });

  test('--help: the usage line names --redis; set and list name their new options', async () => {
    expect((await cli(['--help'])).stdout).toMatch(/^Usage: daymind-keys \[--store PATH \| --redis URL\]/);
    expect((await cli(['set', '--help'])).stdout).toMatch(/--owner OWNER.*--meta k=v/);
    expect((await cli(['list', '--help'])).stdout).toMatch(/^Usage: daymind-keys list \[--owner OWNER\] \[--json\]/);
  });
});
