/**
 * examples/usage-snapshot.yml: the daily GitHub Actions schedule that keeps a usage snapshot and
 * last month's report, with its script run as it is against a store of four keys.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { JsonFileKeyStore } from '../../src';
import { childEnv, tempDir } from '../helpers';
import { CLI } from './run';

const execFileP = promisify(execFile);

let store: string;

beforeAll(async () => {
  store = join(tempDir(), 'api_keys.json');
  const keys = new JsonFileKeyStore({ path: store });
  for (const owner of ['acme', 'acme', 'globex', 'initech']) await keys.create({ owner });
  await keys.close();
});

describe('examples/usage-snapshot.yml', () => {
  const workflow = readFileSync(resolve(__dirname, '../../examples/usage-snapshot.yml'), 'utf8');

  test('a daily schedule that uploads the snapshot with actions/upload-artifact@v4 and a retention', () => {
    expect(workflow).toMatch(/^on:\n\s+schedule:\n(\s+#.*\n)*\s+- cron: '\d+ \d+ \* \* \*'/m);
    expect(workflow).toMatch(/uses: actions\/upload-artifact@v4\n\s+with:\n(\s+\w[\w-]*: .*\n)*\s+retention-days: \d+/);
  });

  test('its snapshot script runs as it is against a store and writes the usage and the report', async () => {
    const block = /^(\s+)run: \|\n((?:\1 {2}.*\n|\n)+)/m.exec(workflow.slice(workflow.indexOf('id: snapshot')))!;
    const script = block[2]!.replace(/^ +/gm, '').replace(/npx daymind-keys/g, `node ${JSON.stringify(CLI)}`);
    const work = tempDir();
    const envFile = join(work, 'daymind.env');
    writeFileSync(envFile, `API_KEY_STORE_PATH=${store}\n`);
    const output = join(work, 'github-output');
    writeFileSync(output, '');
    chmodSync(work, 0o700);
    await execFileP('bash', ['-c', script], {
      cwd: work,
      env: childEnv({ DAYMIND_ENV_FILE: envFile, SNAPSHOT_DIR: 'snapshot', GITHUB_OUTPUT: output }),
    });
    const files = readdirSync(join(work, 'snapshot')).sort();
    const day = /^day=(\d{4}-\d{2}-\d{2})$/m.exec(readFileSync(output, 'utf8'))![1]!;
    const reported = new Date(Date.parse(day) - 86_400_000).toISOString().slice(0, 7);
    expect(files).toEqual([`report-${reported}.html`, `report-${reported}.json`, `usage-${day}.json`]);
    const usage = JSON.parse(readFileSync(join(work, 'snapshot', `usage-${day}.json`), 'utf8')) as { keys: unknown[] };
    expect(usage.keys).toHaveLength(4);
    expect(JSON.parse(readFileSync(join(work, 'snapshot', `report-${reported}.json`), 'utf8')).month).toBe(reported);
    expect(existsSync(join(work, 'snapshot', `report-${reported}.html`))).toBe(true);
  });
});
