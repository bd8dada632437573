import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { daymindAuth, hashKey } from '../../src';
import { childEnv, SEED_KEYS, SEED_STORE, seedStoreCopy, tempDir, waitFor } from '../helpers';
import { cli, CLI, type Run } from './run';

const execFileP = promisify(execFile);

const readStore = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Array<Record<string, unknown>>;

describe('daymind-keys', () => {
  test('--help on the tool and on every command', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['list', 'create', 'revoke', 'show', 'rotate', 'usage']) {
      expect(top.stdout).toContain(command);
      const help = await cli([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: daymind-keys ${command}`));
    }
  });

  test('create prints the key once, stores only its hash, and the key works', async () => {
    const store = join(tempDir(), 'sub', 'keys.json');
    const run = await cli([
      '--store',
      store,
      'create',
      'acme',
      '--rate-limit',
      '10',
      '--expires',
      '30d',
      '--meta',
      'plan=pro',
      '--meta',
      'region=eu',
    ]);
    expect(run.code).toBe(0);
    const key = run.stdout.trim();
    expect(key).toMatch(/^dm_[0-9A-Za-z]{28}$/);
    expect(run.stderr).toContain('shown only this once');
    const text = readFileSync(store, 'utf8');
    expect(text).not.toContain(key);
    const [record] = JSON.parse(text);
    expect(record).toMatchObject({ owner: 'acme', key_hash: hashKey(key), rate_limit_per_minute: 10, meta: { plan: 'pro', region: 'eu' } });
    expect(record.expires_at).toBeGreaterThan(Date.now() / 1000 + 29 * 86400);
    const auth = daymindAuth({ env: {}, storePath: store });
    expect((await auth.verify(key)).code).toBe('VALID');
    await auth.close();

    const json = await cli(['--store', store, '--json', 'create', 'beta']);
    const created = JSON.parse(json.stdout);
    expect(created).toMatchObject({ owner: 'beta', status: 'active', usage_count: 0, key_hash: hashKey(created.key) });
    expect(readStore(store)).toHaveLength(2);
  });

  test('list shows the three keys of the existing-format sample, in a table and as JSON', async () => {
    const store = seedStoreCopy();
    const table = await cli(['--store', store, 'list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^PREFIX\s+OWNER\s+STATUS\s+CREATED \(UTC\)\s+USAGE\s+TODAY\s+LAST USED \(UTC\)$/);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/^dm_8fJq2L\s+team-alpha\s+active\s+2024-11-11 04:40:00\s+1245\s+0\s+2024-11-11 13:55:33$/);
    expect(lines[2]).toMatch(/^dm_Qm3Wv9\s+team-beta\s+active\s+.*never$/);
    expect(lines[3]).toMatch(/^dm_Zz0Hh4\s+old-integration\s+revoked\s+.*98765/);
    // Columns are aligned: every row's STATUS starts where the header's does.
    const col = lines[0]!.indexOf('STATUS');
    for (const line of lines.slice(1)) expect(line.slice(col)).toMatch(/^(active|revoked)/);
    const json = JSON.parse((await cli(['--store', store, '--json', 'list'])).stdout);
    expect(json.map((k: { key_prefix: string; status: string }) => [k.key_prefix, k.status])).toEqual([
      ['dm_8fJq2L', 'active'],
      ['dm_Qm3Wv9', 'active'],
      ['dm_Zz0Hh4', 'revoked'],
    ]);
    expect(readFileSync(store, 'utf8')).toBe(readFileSync(SEED_STORE, 'utf8'));
  });

  test('show names a key by full value, display prefix or hash prefix', async () => {
    const store = seedStoreCopy();
    for (const name of [SEED_KEYS.alpha, 'dm_8fJ', hashKey(SEED_KEYS.alpha).slice(0, 10)]) {
      const run = await cli(['--store', store, '--json', 'show', name]);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ owner: 'team-alpha', usage_count: 1245, status: 'active' });
    }
    const human = await cli(['--store', store, 'show', 'dm_Zz0']);
    expect(human.stdout).toMatch(/^status\s+revoked$/m);
    expect(human.stdout).toMatch(/^owner\s+old-integration$/m);
  });

  test('revoke works on a plain-key record; the file keeps its format', async () => {
    const store = seedStoreCopy();
    const before = readStore(store);
    const run = await cli(['--store', store, 'revoke', SEED_KEYS.beta]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('Revoked dm_Qm3Wv9 (team-beta)\n');
    const after = readStore(store);
    expect(after[1]).toEqual({ ...before[1], revoked: true, revoked_at: expect.any(Number) });
    expect(after[0]).toEqual(before[0]);
    expect(after[2]).toEqual(before[2]);
    const again = await cli(['--store', store, '--json', 'revoke', 'dm_Qm3']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'revoked', changed: false });
  });

  test('rotate: a new key with the same settings; the old one revoked now, or after the grace period', async () => {
    const store = join(tempDir(), 'keys.json');
    const first = (await cli(['--store', store, 'create', 'acme', '--rate-limit', '7', '--meta', 'plan=pro'])).stdout.trim();
    const now = await cli(['--store', store, 'rotate', first]);
    expect(now.code).toBe(0);
    const second = now.stdout.trim();
    expect(second).toMatch(/^dm_/);
    expect(now.stderr).toContain(`Revoked ${first.slice(0, 9)} now`);
    const doc = readStore(store);
    expect(doc[0]).toMatchObject({ revoked: true });
    expect(doc[1]).toMatchObject({
      owner: 'acme',
      rate_limit_per_minute: 7,
      meta: { plan: 'pro' },
      key_hash: hashKey(second),
      rotated_from: hashKey(first),
    });

    const graced = JSON.parse((await cli(['--store', store, '--json', 'rotate', second, '--grace', '1h'])).stdout);
    const third = graced.key as string;
    expect(graced.previous.status).toBe('rotating');
    expect(graced.previous.revoke_at).toBeGreaterThan(Date.now() / 1000 + 3590);
    const auth = daymindAuth({ env: {}, storePath: store });
    expect((await auth.verify(second)).code).toBe('VALID');
    expect((await auth.verify(third)).code).toBe('VALID');
    expect((await auth.verify(second, { now: Date.now() + 3601_000 })).code).toBe('REVOKED');
    expect((await auth.verify(first)).code).toBe('REVOKED');
    await auth.close();
    const rotateRevoked = await cli(['--store', store, 'rotate', first]);
    expect(rotateRevoked.code).toBe(1);
    expect(rotateRevoked.stderr).toMatch(/cannot rotate .* revoked/);
  });

  test("set changes a key's limit, expiry and Stripe customer; create takes --stripe-customer", async () => {
    const store = join(tempDir(), 'keys.json');
    const key = (await cli(['--store', store, 'create', 'acme', '--stripe-customer', 'cus_First1'])).stdout.trim();
    expect(readStore(store)[0]).toMatchObject({ stripe_customer_id: 'cus_First1' });
    const updated = await cli([
      '--store',
      store,
      '--json',
      'set',
      key.slice(0, 9),
      '--stripe-customer',
      'cus_Second2',
      '--rate-limit',
      '30',
      '--expires',
      '7d',
    ]);
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ stripe_customer_id: 'cus_Second2', rate_limit_per_minute: 30 });
    expect(readStore(store)[0]!.expires_at as number).toBeGreaterThan(Date.now() / 1000 + 6 * 86400);
    expect(
      (await cli(['--store', store, 'set', key, '--stripe-customer', 'none', '--rate-limit', 'default', '--expires', 'never'])).stdout,
    ).toMatch(/^Updated dm_/);
    const record = readStore(store)[0]!;
    expect(record).not.toHaveProperty('stripe_customer_id');
    expect(record).not.toHaveProperty('rate_limit_per_minute');
    expect(record).not.toHaveProperty('expires_at');
    const before = readFileSync(store);
    expect((await cli(['--store', store, 'set', key, '--stripe-customer', 'acct_1'])).code).toBe(2);
    expect((await cli(['--store', store, 'set', key])).stderr).toMatch(/set needs at least one of/);
    expect(readFileSync(store).equals(before)).toBe(true);
  });

  test('usage totals per owner and per key', async () => {
    const store = seedStoreCopy();
    await cli(['--store', store, 'create', 'team-alpha']);
    const table = await cli(['--store', store, 'usage']);
    expect(table.stdout).toMatch(/^OWNER\s+KEYS\s+USAGE\s+TODAY$/m);
    expect(table.stdout).toMatch(/^old-integration\s+1\s+98765\s+0$/m);
    expect(table.stdout).toMatch(/^team-alpha\s+2\s+1245\s+0$/m);
    const json = JSON.parse((await cli(['--store', store, '--json', 'usage', '--owner', 'team-alpha'])).stdout);
    expect(json.owners).toEqual([{ owner: 'team-alpha', keys: 2, usage_count: 1245, requests_today: 0 }]);
    expect(json.keys).toHaveLength(2);
  });

  test('the store path: --store, else API_KEY_STORE_PATH from --env-file, else from the environment', async () => {
    const dir = tempDir();
    const fromEnv = join(dir, 'env.json');
    const fromFile = join(dir, 'file.json');
    const fromFlag = join(dir, 'flag.json');
    const envFile = join(dir, 'daymind.env');
    writeFileSync(envFile, `# daymind\nexport API_KEY_STORE_PATH="${fromFile}"\nPORT=3000\n`);
    await cli(['create', 'a'], { API_KEY_STORE_PATH: fromEnv });
    expect(existsSync(fromEnv)).toBe(true);
    await cli(['--env-file', envFile, 'create', 'b'], { API_KEY_STORE_PATH: fromEnv });
    expect(readStore(fromFile)[0]!.owner).toBe('b');
    await cli(['--env-file', envFile, '--store', fromFlag, 'create', 'c'], { API_KEY_STORE_PATH: fromEnv });
    expect(readStore(fromFlag)[0]!.owner).toBe('c');
    expect(readStore(fromEnv)).toHaveLength(1);
  });

  test('a missing env file: a clear line naming it and a non-zero exit', async () => {
    // Node itself looks for a missing --env-file target even after the script name and exits 9
    // with "node: FILE: not found" before the tool runs; run directly past that, the tool exits 1.
    const missing = join(tempDir(), 'none.env');
    const run = await cli(['--env-file', missing, 'list']);
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain(missing);
    const direct: Run = await execFileP(process.execPath, ['--', CLI, '--env-file', missing, 'list']).then(
      (r) => ({ code: 0, ...r }),
      (e: Run) => e,
    );
    expect(direct.code).toBe(1);
    expect(direct.stderr).toContain(`cannot read the env file ${missing}`);
  });

  describe('bad input: one line on stderr, exit 2 for usage and 1 for the rest, the file unchanged', () => {
    const corrupt = '[{"key": "dm_x", "owner": ';
    const cases: Array<[string, (store: string) => string[], number, RegExp, string?]> = [
      ['no command', (s) => ['--store', s], 2, /a command is required/],
      ['an unknown command', (s) => ['--store', s, 'destroy'], 2, /unknown command "destroy"/],
      ['an unknown flag', (s) => ['--store', s, 'list', '--all'], 2, /Unknown option '--all'/],
      ['a flag of another command', (s) => ['--store', s, 'list', '--grace', '1h'], 2, /list does not take --grace/],
      ['missing OWNER', (s) => ['--store', s, 'create'], 2, /create needs OWNER/],
      ['an empty owner', (s) => ['--store', s, 'create', ''], 2, /owner must be a non-empty string/],
      ['a control character in the owner', (s) => ['--store', s, 'create', 'bad\u0007owner'], 2, /control characters/],
      ['a bad duration', (s) => ['--store', s, 'create', 'x', '--expires', '3 days'], 2, /--expires: "3 days" is neither a duration/],
      ['a past date', (s) => ['--store', s, 'create', 'x', '--expires', '2020-01-01'], 2, /not in the future/],
      ['an impossible date', (s) => ['--store', s, 'create', 'x', '--expires', '2027-02-30'], 2, /"2027-02-30" is not a calendar date/],
      ['a bad grace', (s) => ['--store', s, 'rotate', 'dm_8fJ', '--grace', '1y'], 2, /--grace: "1y" is not a duration/],
      ['a bad rate limit', (s) => ['--store', s, 'create', 'x', '--rate-limit', '0'], 2, /--rate-limit/],
      ['a bad meta pair', (s) => ['--store', s, 'create', 'x', '--meta', 'novalue'], 2, /--meta/],
      ['an extra argument', (s) => ['--store', s, 'revoke', 'dm_8fJ', 'dm_Qm3'], 2, /takes only KEY\|PREFIX/],
      ['an unknown key', (s) => ['--store', s, 'revoke', 'dm_nothere'], 1, /no key matches "dm_nothere"/],
      [
        'an ambiguous prefix',
        (s) => ['--store', s, 'revoke', 'dm_'],
        1,
        /"dm_" matches 3 keys: dm_8fJq2L \(team-alpha.*dm_Qm3Wv9 \(team-beta.*dm_Zz0Hh4/,
      ],
      ['a missing store', (s) => ['--store', s + '.missing', 'list'], 1, /there is no key store at .*\.missing/],
      [
        'an unwritable path',
        (s) => ['--store', join(s, 'below-a-file.json'), 'create', 'x'],
        1,
        /cannot create the key store .*below-a-file\.json/,
      ],
      ['a corrupt store', (s) => ['--store', s, 'create', 'x'], 1, /is corrupt/, corrupt],
      ['a corrupt store, read', (s) => ['--store', s, 'list'], 1, /is corrupt/, corrupt],
      ['an unreadable env file', (s) => ['--env-file', s, 'list'], 2, /:1: not a NAME=value line/],
    ];
    const rows = cases.map(([name, args, code, message, content]) => ({ name, args, code, message, content }));
    test.each(rows)('$name', async ({ args, code, message, content }) => {
      const store = seedStoreCopy();
      if (content !== undefined) writeFileSync(store, content);
      const before = readFileSync(store);
      const run = await cli(args(store));
      expect(run.code).toBe(code);
      expect(run.stderr).toMatch(message);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(run.stdout).toBe('');
      expect(readFileSync(store).equals(before)).toBe(true);
    });
  });
});

describe('daymind-keys beside a running server on the same file', () => {
  test('keys created or revoked take effect within a second, and no usage count is lost', async () => {
    const store = seedStoreCopy();
    const server = spawn(process.execPath, [join(__dirname, '../fixtures/serve-env.js')], {
      env: childEnv({ API_KEY_STORE_PATH: store, API_RATE_LIMIT_PER_MINUTE: '1000000', IP_RATE_LIMIT_PER_MINUTE: 'off' }),
    });
    const port = await new Promise<string>((r) => server.stdout.once('data', (d) => r(String(d).trim())));
    const url = `http://127.0.0.1:${port}/hit`;
    const hit = async (key: string) => (await fetch(url, { headers: { authorization: `Bearer ${key}` } })).status;
    const counted = new Map<string, number>();
    let running = true;
    const traffic = (async () => {
      while (running) {
        for (const key of [SEED_KEYS.alpha, SEED_KEYS.beta]) if ((await hit(key)) === 200) counted.set(key, (counted.get(key) ?? 0) + 1);
      }
    })();
    try {
      const created = await cli(['--store', store, 'create', 'newcomer']);
      const key = created.stdout.trim();
      const t0 = Date.now();
      expect(await hit(key)).toBe(200);
      expect(Date.now() - t0).toBeLessThan(1000);
      let newcomerAllowed = 1;
      for (let i = 0; i < 20; i++) if ((await hit(key)) === 200) newcomerAllowed++;

      await cli(['--store', store, 'revoke', key.slice(0, 9)]);
      const elapsed = await waitFor(
        async () => {
          const status = await hit(key);
          if (status === 200) newcomerAllowed++;
          return status === 401;
        },
        1000,
        20,
      );
      expect(elapsed).toBeLessThan(1000);
      expect((await cli(['--store', store, 'create', 'another'])).code).toBe(0);
      await new Promise((r) => setTimeout(r, 300));

      running = false;
      await traffic;
      const exited = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));
      server.kill('SIGTERM');
      expect(await exited).toBe(0); // 1 when its close() (the final flush) fails
      const doc = readStore(store);
      const find = (k: string) => doc.find((r) => r.key === k || r.key_hash === hashKey(k))!;
      expect(find(SEED_KEYS.alpha).usage_count).toBe(1245 + counted.get(SEED_KEYS.alpha)!);
      expect(find(SEED_KEYS.beta).usage_count).toBe(counted.get(SEED_KEYS.beta));
      expect(find(key)).toMatchObject({ usage_count: newcomerAllowed, revoked: true });
      expect(doc.map((r) => r.owner)).toEqual(['team-alpha', 'team-beta', 'old-integration', 'newcomer', 'another']);
    } finally {
      running = false;
      server.kill('SIGKILL');
    }
  });
});
