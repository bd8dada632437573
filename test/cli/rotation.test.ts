import { join } from 'node:path';
import { JsonFileKeyStore } from '../../src';
import { tempDir, TEST_NOW } from '../helpers';
import { cliAt } from './run';

describe('a key in its rotation grace period', () => {
  test('list, show and usage say rotating with the time left; --json says rotating; it can be rotated again', async () => {
    const store = join(tempDir(), 'api_keys.json');
    const keys = new JsonFileKeyStore({ path: store, now: () => TEST_NOW });
    // Expires in 7 months, but replaced an hour before the clock: revoked in an hour.
    const { record } = await keys.create({ owner: 'acme', expires_at: TEST_NOW / 1000 + 210 * 86_400 });
    const later = TEST_NOW + 3_600_000;
    await keys.close();
    expect((await cliAt(TEST_NOW, ['--store', store, 'rotate', record.key_prefix, '--grace', '2h'])).code).toBe(0);

    const list = await cliAt(later, ['--store', store, 'list']);
    expect(list.stdout).toMatch(new RegExp(`^${record.key_prefix}\\s+acme\\s+rotating, 1 h left\\s`, 'm'));
    const show = await cliAt(later, ['--store', store, 'show', record.key_prefix]);
    expect(show.stdout).toMatch(/^status\s+rotating, 1 h left$/m);
    const usage = await cliAt(later, ['--store', store, 'usage']);
    expect(usage.stdout).toMatch(new RegExp(`^acme\\s+${record.key_prefix}\\s+rotating, 1 h left\\s`, 'm'));
    const json = JSON.parse((await cliAt(later, ['--store', store, '--json', 'show', record.key_prefix])).stdout);
    expect(json).toMatchObject({ status: 'rotating', revoke_at: TEST_NOW / 1000 + 7200 });

    // Rotating it again (a second new key) is allowed, and its end never moves later.
    expect((await cliAt(later, ['--store', store, 'rotate', record.key_prefix, '--grace', '24h'])).code).toBe(0);
    expect(JSON.parse((await cliAt(later, ['--store', store, '--json', 'show', record.key_prefix])).stdout).revoke_at).toBe(
      TEST_NOW / 1000 + 7200,
    );
    // Once the grace period has passed: revoked.
    const after = await cliAt(TEST_NOW + 7_200_000, ['--store', store, '--json', 'show', record.key_prefix]);
    expect(JSON.parse(after.stdout).status).toBe('revoked');
  });

  test('usage lists keys in the owners order, most used owner first', async () => {
    const store = join(tempDir(), 'api_keys.json');
    const keys = new JsonFileKeyStore({ path: store, now: () => TEST_NOW });
    const small = await keys.create({ owner: 'a-small' });
    const big = await keys.create({ owner: 'z-big' });
    await keys.applyUsage([
      { key_hash: small.record.key_hash, units: 1, last_used: TEST_NOW / 1000, days: [] },
      { key_hash: big.record.key_hash, units: 9, last_used: TEST_NOW / 1000, days: [] },
    ]);
    await keys.close();
    const json = JSON.parse((await cliAt(TEST_NOW, ['--store', store, '--json', 'usage'])).stdout);
    expect(json.owners.map((o: { owner: string }) => o.owner)).toEqual(['z-big', 'a-small']);
    expect(json.keys.map((k: { owner: string }) => k.owner)).toEqual(['z-big', 'a-small']);
  });
});
