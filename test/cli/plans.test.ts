import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, TEST_NOW } from '../helpers';
import { cli, cliAt } from './run';

const PLANS = {
  free: {
    limits: [
      { name: 'second', limit: 2, window: '1s' },
      { name: 'day', limit: 1000, window: '1d', block_seconds: 60 },
    ],
    monthly_quota: 10000,
    description: 'Free tier',
  },
  pro: { limits: [{ name: 'minute', limit: 600, window: '15m' }] },
};

/** A temp dir with a plans file and a store path in it, and the env that names the plans file. */
function setup(plans: unknown = PLANS): { dir: string; store: string; plansFile: string; env: Record<string, string> } {
  const dir = tempDir();
  const plansFile = join(dir, 'plans.json');
  writeFileSync(plansFile, JSON.stringify(plans));
  return { dir, store: join(dir, 'keys.json'), plansFile, env: { DAYMIND_PLANS_FILE: plansFile } };
}

const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>;
const month = () => {
  const d = new Date(TEST_NOW);
  return d.getUTCFullYear() * 100 + d.getUTCMonth() + 1;
};

describe('daymind-keys and plans', () => {
  test('create with plan, scopes and credits; show --json has them', async () => {
    const { store, env } = setup();
    const created = await cli(
      ['--store', store, '--json', 'create', 'acme', '--plan', 'free', '--scopes', ' read, write ,read', '--credits', '500'],
      env,
    );
    expect(created.code).toBe(0);
    const record = json(created.stdout);
    const fields = {
      plan: 'free',
      scopes: ['read', 'write'],
      credits: 500,
      credits_refill: null,
      requests_this_month: 0,
      monthly_quota: 10000,
    };
    expect(record).toMatchObject(fields);
    const shown = await cli(['--store', store, '--json', 'show', record.key_prefix as string], env);
    const { key, ...view } = record;
    expect(key).toMatch(/^dm_/);
    expect(json(shown.stdout)).toEqual(view);

    const refilled = json((await cli(['--store', store, '--json', 'create', 'beta', '--refill', 'monthly:300'], env)).stdout);
    expect(refilled).toMatchObject({ plan: null, scopes: [], credits: 300, credits_refill: { interval: 'monthly', amount: 300 } });
    const human = await cli(['--store', store, 'show', record.key_prefix as string], env);
    expect(human.stdout).toMatch(/^plan\s+free$/m);
    expect(human.stdout).toMatch(/^scopes\s+read,write$/m);
    expect(human.stdout).toMatch(/^this_month\s+0\/10000$/m);
    expect(human.stdout).toMatch(/^credits\s+500$/m);
  });

  test('an unknown plan, or a plan with no plans in force, is refused and the store is untouched', async () => {
    const { store, env, dir } = setup();
    await cli(['--store', store, 'create', 'acme'], env);
    const before = readFileSync(store);
    const unknown = await cli(['--store', store, 'create', 'acme', '--plan', 'gold'], env);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toBe('daymind-keys: --plan: "gold" is not a plan in force (free, pro)\n');
    const none = await cli(['--store', store, 'create', 'acme', '--plan', 'free']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no plans are in force: DAYMIND_PLANS_FILE is not set/);
    const set = await cli(['--store', store, 'set', 'dm_', '--plan', 'gold'], env);
    expect(set.code).toBe(1);
    expect(readFileSync(store).equals(before)).toBe(true);
    const badScope = await cli(['--store', store, 'create', 'acme', '--scopes', 'read,wr ite'], env);
    expect(badScope.code).toBe(2);
    expect(badScope.stderr).toMatch(/--scopes: "wr ite" is not a scope/);
    expect(readFileSync(store).equals(before)).toBe(true);
    // A missing store is not created either.
    const fresh = join(dir, 'fresh.json');
    expect((await cli(['--store', fresh, 'create', 'acme', '--plan', 'gold'], env)).code).toBe(1);
    expect(() => readFileSync(fresh)).toThrow();
  });

  test('set --plan and --scopes, and none removes them; the plans file may come from --env-file', async () => {
    const { store, plansFile, dir } = setup();
    const envFile = join(dir, 'daymind.env');
    writeFileSync(envFile, `API_KEY_STORE_PATH=${store}\nDAYMIND_PLANS_FILE=${plansFile}\n`);
    const key = (await cli(['--env-file', envFile, 'create', 'acme', '--plan', 'free'])).stdout.trim();
    const changed = json((await cli(['--env-file', envFile, '--json', 'set', key, '--plan', 'pro', '--scopes', 'admin'])).stdout);
    expect(changed).toMatchObject({ plan: 'pro', scopes: ['admin'], monthly_quota: null });
    const removed = await cli(['--env-file', envFile, '--json', 'set', key, '--plan', 'none', '--scopes', 'none']);
    expect(removed.code).toBe(0);
    expect(json(removed.stdout)).toMatchObject({ plan: null, scopes: [] });
    const raw = JSON.parse(readFileSync(store, 'utf8'))[0];
    expect(raw).not.toHaveProperty('plan');
    expect(raw).not.toHaveProperty('scopes');
    // The older options still work beside the new ones.
    expect(json((await cli(['--env-file', envFile, '--json', 'set', key, '--rate-limit', '7'])).stdout)).toMatchObject({
      rate_limit_per_minute: 7,
    });
  });

  test('credits --add, --set and --refill; a negative add stops at 0', async () => {
    const { store, env } = setup();
    const key = (await cli(['--store', store, 'create', 'acme', '--credits', '100'], env)).stdout.trim();
    const credits = (args: string[]) => cli(['--store', store, 'credits', key, ...args], env);
    expect((await credits(['--add', '50'])).stdout).toMatch(/^Credits of dm_\w+ \(acme\): 150\n$/);
    expect((await credits(['--add', '-30'])).stdout).toMatch(/: 120\n$/);
    expect((await credits(['--add=-500'])).stdout).toMatch(/: 0\n$/);
    expect((await credits(['--set', '42'])).stdout).toMatch(/: 42\n$/);
    const refill = json((await cli(['--store', store, '--json', 'credits', key, '--set', '10', '--refill', 'daily:200'], env)).stdout);
    expect(refill).toMatchObject({ credits: 10, credits_refill: { interval: 'daily', amount: 200 } });
    expect((await credits(['--refill', 'none'])).stdout).toMatch(/: 10\n$/);
    expect(JSON.parse(readFileSync(store, 'utf8'))[0]).toMatchObject({ credits: 10 });

    // A key that is not prepaid: --refill alone starts it at the refill amount.
    const other = (await cli(['--store', store, 'create', 'beta'], env)).stdout.trim();
    expect((await cli(['--store', store, 'credits', other, '--refill', 'monthly:1000'], env)).stdout).toMatch(/: 1000 \(monthly 1000\)\n$/);

    const before = readFileSync(store);
    for (const [args, message] of [
      [['--add', '1', '--set', '2'], /takes --add or --set, not both/],
      [[], /credits needs --add N, --set N or --refill/],
      [['--set', '-1'], /--set: "-1" is not a whole number of 0 or more/],
      [['--add', '1.5'], /--add: "1.5" is not a whole number/],
      [['--refill', 'yearly:5'], /--refill: "yearly:5" is not monthly:N or daily:N/],
    ] as const) {
      const run = await credits([...args]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
    expect(readFileSync(store).equals(before)).toBe(true);
  });

  test('plans lists the plans in force as a table and as JSON', async () => {
    const { env } = setup();
    const table = await cli(['plans'], env);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^PLAN\s+LIMITS\s+MONTHLY QUOTA\s+DESCRIPTION$/);
    expect(lines[1]).toMatch(/^free\s+second 2\/1s, day 1000\/1d \(block 60s\)\s+10000\s+Free tier$/);
    expect(lines[2]).toMatch(/^pro\s+minute 600\/15m\s+none$/);
    expect(JSON.parse((await cli(['--json', 'plans'], env)).stdout)).toEqual([
      {
        name: 'free',
        limits: [
          { name: 'second', limit: 2, window: '1s', window_seconds: 1, block_seconds: null },
          { name: 'day', limit: 1000, window: '1d', window_seconds: 86400, block_seconds: 60 },
        ],
        monthly_quota: 10000,
        description: 'Free tier',
      },
      {
        name: 'pro',
        limits: [{ name: 'minute', limit: 600, window: '15m', window_seconds: 900, block_seconds: null }],
        monthly_quota: null,
        description: null,
      },
    ]);
    const none = await cli(['plans']);
    expect(none).toMatchObject({ code: 1, stdout: '' });
    expect(none.stderr).toMatch(/^daymind-keys: no plans are in force: DAYMIND_PLANS_FILE is not set/);
  });

  test('a bad plans file: the message names the file and the plan', async () => {
    const { plansFile, env, store } = setup({ free: { limits: [{ name: 'second', limit: 0, window: '1s' }] } });
    const run = await cli(['plans'], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `daymind-keys: DAYMIND_PLANS_FILE: ${plansFile}: plan "free": limits[0] ("second"): "limit" must be a whole number of at least 1; got 0\n`,
    );
    const create = await cli(['--store', store, 'create', 'acme', '--plan', 'free'], env);
    expect(create.code).toBe(1);
    expect(create.stderr).toContain(plansFile);
    // Reading keys goes on without quotas, with a note.
    await cli(['--store', store, 'create', 'acme']);
    const list = await cli(['--store', store, 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stderr).toMatch(/plan "free".*monthly quotas are not shown/);
  });

  test('list shows plan, month usage against the quota, credits and scopes', async () => {
    const { store, env } = setup();
    await cli(['--store', store, 'create', 'acme', '--plan', 'free', '--scopes', 'read', '--credits', '5'], env);
    await cli(['--store', store, 'create', 'beta', '--plan', 'pro'], env);
    await cli(['--store', store, 'create', 'gamma'], env);
    // Usage counted this month, and a count left from an earlier month (which is 0 now).
    const raws = JSON.parse(readFileSync(store, 'utf8'));
    Object.assign(raws[0], { requests_this_month: 42, requests_month: month() });
    Object.assign(raws[1], { requests_this_month: 99, requests_month: 200001 });
    writeFileSync(store, JSON.stringify(raws));

    // The month is the clock's: the listing runs in this process at TEST_NOW.
    const lines = (await cliAt(TEST_NOW, ['--store', store, 'list'], env)).stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^PREFIX\s+OWNER\s+STATUS\s+CREATED \(UTC\)\s+USAGE\s+TODAY\s+LAST USED \(UTC\)\s+PLAN\s+MONTH\s+CREDITS\s+SCOPES$/,
    );
    expect(lines[1]).toMatch(/\sacme\s.*never\s+free\s+42\/10000\s+5\s+read$/);
    expect(lines[2]).toMatch(/\sbeta\s.*never\s+pro\s+0\s+-\s+-$/);
    expect(lines[3]).toMatch(/\sgamma\s.*never\s+-\s+0\s+-\s+-$/);
    const listed = JSON.parse((await cliAt(TEST_NOW, ['--store', store, '--json', 'list'], env)).stdout);
    expect(listed.map((r: Record<string, unknown>) => [r.plan, r.requests_this_month, r.monthly_quota, r.credits])).toEqual([
      ['free', 42, 10000, 5],
      ['pro', 0, null, null],
      [null, 0, null, null],
    ]);
    // Without plans in force, the count alone.
    expect((await cliAt(TEST_NOW, ['--store', store, 'list'])).stdout).toMatch(/never\s+free\s+42\s+5\s+read$/m);
  });

  test('--help of the new and changed commands', async () => {
    for (const command of ['plans', 'credits', 'create', 'set', 'list', 'show']) {
      const help = await cli([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: daymind-keys ${command}`));
    }
    expect((await cli(['create', '--help'])).stdout).toContain('--plan');
    expect((await cli(['--help'])).stdout).toContain('DAYMIND_PLANS_FILE');
  });
});
