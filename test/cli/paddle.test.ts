import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers';
import { cli } from './run';

const readStore = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;
const SUB_1 = `sub_${'01first'.padEnd(26, '0')}`;
const SUB_2 = `sub_${'01second'.padEnd(26, '0')}`;

describe('daymind-keys --paddle-subscription', () => {
  test('create takes it; set changes and removes it; show and --json tell it; a malformed id leaves the store untouched', async () => {
    const store = join(tempDir(), 'keys.json');
    const key = (await cli(['--store', store, 'create', 'acme', '--paddle-subscription', SUB_1])).stdout.trim();
    expect(readStore(store)[0]).toMatchObject({ owner: 'acme', paddle_subscription_id: SUB_1 });

    const updated = await cli(['--store', store, '--json', 'set', key.slice(0, 9), '--paddle-subscription', SUB_2]);
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ paddle_subscription_id: SUB_2 });
    expect(readStore(store)[0]).toMatchObject({ paddle_subscription_id: SUB_2 });
    expect((await cli(['--store', store, 'show', key])).stdout).toMatch(new RegExp(`^paddle_subscription  ${SUB_2}$`, 'm'));

    const before = readFileSync(store);
    for (const bad of ['sub_123', 'cus_First1', SUB_2.toUpperCase().replace('SUB_', 'sub_')]) {
      const run = await cli(['--store', store, 'set', key, '--paddle-subscription', bad]);
      expect([run.code, run.stdout]).toEqual([2, '']);
      expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/--paddle-subscription: ".*" is not a Paddle subscription id/)]);
    }
    const created = await cli(['--store', store, 'create', 'other', '--paddle-subscription', 'sub_x']);
    expect(created.code).toBe(2);
    expect(readFileSync(store).equals(before)).toBe(true);

    expect((await cli(['--store', store, 'set', key, '--paddle-subscription', 'none'])).stdout).toMatch(/^Updated dm_/);
    expect(readStore(store)[0]).not.toHaveProperty('paddle_subscription_id');
    const shown = (await cli(['--store', store, 'show', key])).stdout;
    expect(shown).not.toMatch(/paddle_subscription/);
    expect(JSON.parse((await cli(['--store', store, '--json', 'show', key])).stdout)).not.toHaveProperty('paddle_subscription_id');
  });
});
