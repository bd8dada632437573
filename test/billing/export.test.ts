import { execFile } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cli } from '../cli/run';
import { tempDir } from '../helpers';

const execFileP = promisify(execFile);

/** A ledger as the local provider writes it: two months, three owners, one line repeated (a re-delivery). */
function writeLedger(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const line = (owner: string, quantity: number, end: number, id: string, hash = owner.padEnd(64, '0')) =>
    JSON.stringify({
      time: end + 1,
      window_start: end - 1,
      window_end: end,
      key_prefix: 'dm_abcdef',
      key_hash: hash,
      owner,
      customer_id: null,
      quantity,
      identifier: id,
    });
  const oct = Date.UTC(2026, 9, 15) / 1000;
  const nov = Date.UTC(2026, 10, 20) / 1000;
  writeFileSync(
    join(dir, 'ledger-2026-10.jsonl'),
    [
      line('team-alpha', 1000, oct, 'dmu_1'),
      line('team-alpha', 245, oct + 60, 'dmu_2', 'b'.repeat(64)),
      line('beta & co, "ltd"', 7, oct, 'dmu_3'),
    ].join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'ledger-2026-11.jsonl'),
    [line('team-alpha', 5, nov, 'dmu_4'), line('team-alpha', 5, nov, 'dmu_4'), line('9lives', 3, nov, 'dmu_5')].join('\n') + '\n',
  );
}

describe('daymind-keys export', () => {
  test('csv and json: per-owner totals per month, a re-delivered line counted once, amounts exact', async () => {
    const dir = tempDir();
    writeLedger(dir);
    const csv = await cli(['export', '--ledger-dir', dir, '--price', '0.001 USD']);
    expect(csv.code).toBe(0);
    expect(csv.stdout).toBe(
      [
        'month,owner,keys,quantity,unit_price,amount,currency',
        '2026-10,"beta & co, ""ltd""",1,7,0.001,0.007,USD',
        '2026-10,team-alpha,2,1245,0.001,1.245,USD',
        '2026-11,9lives,1,3,0.001,0.003,USD',
        '2026-11,team-alpha,1,5,0.001,0.005,USD',
        '',
      ].join('\n'),
    );
    const json = JSON.parse(
      (await cli(['export', '--ledger-dir', dir, '--format', 'json', '--month', '2026-10', '--owner', 'team-alpha'])).stdout,
    );
    expect(json).toEqual([{ month: '2026-10', owner: 'team-alpha', keys: 2, quantity: 1245 }]);
  });

  test('the ledger is found through DAYMIND_LEDGER_DIR or beside the key store', async () => {
    const dir = tempDir();
    writeLedger(dir);
    const viaEnv = await cli(['export', '--month', '2026-11'], { DAYMIND_LEDGER_DIR: dir });
    expect(viaEnv.stdout).toContain('2026-11,team-alpha,1,5');
    const viaStore = await cli(['--store', join(dir, 'api_keys.json'), 'export', '--month', '2026-11']);
    expect(viaStore.stdout).toContain('2026-11,9lives,1,3');
  });

  test('beancount: one transaction per owner and month, and bean-check accepts the file', async () => {
    const dir = tempDir();
    writeLedger(dir);
    const run = await cli(['export', '--ledger-dir', dir, '--format', 'beancount', '--price', '0.0015 EUR']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('2026-10-31 * "team-alpha" "API usage 2026-10: 1245 requests at 0.0015 EUR"');
    expect(run.stdout).toContain('  Assets:Receivable:Team-alpha  1.8675 EUR');
    expect(run.stdout).toContain('  Assets:Receivable:X-9lives  0.0045 EUR');
    expect(run.stdout.match(/^\d{4}-\d{2}-\d{2} \* /gm)).toHaveLength(4);
    const file = join(dir, 'usage.beancount');
    writeFileSync(file, run.stdout);
    const check = await execFileP('bean-check', [file]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
  }, 30_000);

  test('an owner without usage is an error, as for usage --owner', async () => {
    const dir = tempDir();
    writeLedger(dir);
    const run = await cli(['export', '--ledger-dir', dir, '--owner', 'nobody']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/the ledger has no usage of "nobody"/);
    expect(run.stdout).toBe('');
  });

  test.each([
    [['export', '--format', 'xml'], /--format: "xml" is not csv, json or beancount/],
    [['export', '--month', '2026-13'], /--month: "2026-13" is not YYYY-MM/],
    [['export', '--price', 'cheap'], /--price: "cheap" is not an amount and a currency/],
    [['export', '--format', 'beancount'], /--format beancount needs --price/],
  ])('bad input %j: exit 2 and one line', async (args, message) => {
    const run = await cli([...args, '--ledger-dir', tempDir()]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
});
