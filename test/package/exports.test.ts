import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join, resolve } from 'node:path';

const run = promisify(execFile);
const consumer = join(__dirname, '..', 'fixtures', 'consumer');
const root = resolve(__dirname, '../..');

describe('the built package through its exports map', () => {
  test('ESM import serves an authenticated request', async () => {
    const { stdout } = await run(process.execPath, [join(consumer, 'esm.mjs')], { cwd: root });
    expect(stdout.trim()).toBe('200 {"owner":"esm"}');
  });

  test('CommonJS require and ESM import share one instance', async () => {
    const { stdout } = await run(process.execPath, [join(consumer, 'cjs.cjs')], { cwd: root });
    expect(stdout.trim()).toBe('function true true');
  });

  test('TypeScript consumers get the types, req.daymind included', async () => {
    await expect(run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', consumer], { cwd: root })).resolves.toBeDefined();
  }, 60_000);
});
