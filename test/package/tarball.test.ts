import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '../helpers';

const run = promisify(execFile);
const root = resolve(__dirname, '../..');
const fixtures = join(__dirname, '..', 'fixtures', 'tarball');
const npm = (args: string[], cwd: string) =>
  run('npm', args, { cwd, env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false' } });

/**
 * The repository as a fresh clone has it, in a temp dir: the files git tracks, plus new ones it
 * does not ignore (not yet committed), so no dist/; node_modules is the repository's, linked.
 */
function freshClone(): string {
  const dir = tempDir();
  const list = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  for (const file of list.split('\0')) {
    if (file && existsSync(join(root, file))) cpSync(join(root, file), join(dir, file)); // a deleted file is listed until committed
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

describe('the published package (npm pack), installed in a fresh project', () => {
  let project: string;
  let tarball: string;

  beforeAll(async () => {
    // Packed from a clone without dist/: the prepack script must build it.
    const clone = freshClone();
    expect(existsSync(join(clone, 'dist'))).toBe(false);
    const out = tempDir();
    const { stdout } = await npm(['pack', '--json', '--pack-destination', out], clone);
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(out, packed!.filename);
    files = packed!.files.map((f) => f.path);
    project = tempDir();
    cpSync(fixtures, project, { recursive: true });
    await npm(['init', '-y'], project);
    await npm(
      ['install', '--prefer-offline', '--no-save', tarball, 'express@5', 'typescript@5.9', '@types/express@5', '@types/node@20'],
      project,
    );
  }, 180_000);

  let files: string[] = [];

  test('ships dist (CJS, ESM, types), README, LICENSE and CHANGELOG, and nothing else', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'README.md',
        'LICENSE',
        'CHANGELOG.md',
        'package.json',
        'dist/cjs/index.js',
        'dist/cjs/index.d.ts',
        'dist/esm/index.mjs',
        'dist/esm/index.d.mts',
        'dist/cjs/cli/index.js',
      ]),
    );
    const unexpected = files.filter((f) => !/^dist\//.test(f) && !['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json'].includes(f));
    expect(unexpected).toEqual([]);
    expect(files.filter((f) => f.endsWith('.map') || f.startsWith('src/') || f.startsWith('test/') || f.startsWith('data/'))).toEqual([]);
  });

  test('npx daymind-keys --help and create work from the installed package', async () => {
    const help = await run('npx', ['--no-install', 'daymind-keys', '--help'], { cwd: project });
    expect(help.stdout).toMatch(/^Usage: daymind-keys/);
    const created = await run('npx', ['--no-install', 'daymind-keys', 'create', 'newcomer'], { cwd: project });
    expect(created.stdout.trim()).toMatch(/^dm_[0-9A-Za-z]{28}$/);
    expect(readdirSync(join(project, 'data'))).toContain('api_keys.json');
  }, 60_000);

  test('CommonJS require and ESM import each serve an authenticated request', async () => {
    const key = (await run('npx', ['--no-install', 'daymind-keys', 'create', 'consumer'], { cwd: project })).stdout.trim();
    const cjs = await run(process.execPath, ['app.cjs', key], { cwd: project });
    expect(cjs.stdout.trim()).toBe('200 {"owner":"consumer","via":"cjs"}');
    const esm = await run(process.execPath, ['app.mjs', key], { cwd: project });
    expect(esm.stdout).toMatch(/^200 \{"key_prefix":"dm_\w{6}","owner":"consumer","created_at"/);
  }, 60_000);

  test('the ES module TypeScript app of docs/getting-started.md compiles with its tsconfig and serves a key', async () => {
    const doc = readFileSync(join(root, 'docs/getting-started.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## TypeScript in an ES module app'));
    const tsconfig = /```json\n([\s\S]*?)```/.exec(section)![1]!;
    const server = /```ts\n\/\/ server\.ts\n([\s\S]*?)```/.exec(section)![1]!;
    const app = join(project, 'esm-app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'esm-app', type: 'module' }));
    writeFileSync(join(app, 'tsconfig.json'), tsconfig);
    writeFileSync(join(app, 'server.ts'), server);
    symlinkSync(join(project, 'node_modules'), join(app, 'node_modules'), 'dir');
    await run(process.execPath, [join(project, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app });
    const key = (await run('npx', ['--no-install', 'daymind-keys', 'create', 'esm-co'], { cwd: app })).stdout.trim();
    const child = spawn(process.execPath, ['build/server.js'], { cwd: app, env: { ...process.env, PORT: '0' } });
    try {
      const port = await new Promise<string>((done, fail) => {
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stdout.on('data', () => /listening on port (\d+)/.test(out) && done(/listening on port (\d+)/.exec(out)![1]!));
        child.on('exit', (code) => fail(new Error(`the server exited with ${code}`)));
      });
      const res = await fetch(`http://127.0.0.1:${port}/v1/hello`, { headers: { authorization: `Bearer ${key}` } });
      expect([res.status, await res.json()]).toEqual([200, { owner: 'esm-co' }]);
    } finally {
      child.kill();
    }
  }, 60_000);

  test('a TypeScript consumer type-checks (req.daymind is typed)', async () => {
    await expect(
      run(process.execPath, [join(project, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd: project }),
    ).resolves.toBeDefined();
    writeFileSync(
      join(project, 'wrong.ts'),
      "import type { Request } from 'express';\nexport const n: number = ({} as Request).daymind!.owner;\n",
    );
    const wrong = await run(
      process.execPath,
      [
        join(project, 'node_modules/typescript/bin/tsc'),
        '--noEmit',
        '--module',
        'node16',
        '--strict',
        '--types',
        'node',
        'wrong.ts',
        'app.ts',
      ],
      { cwd: project },
    ).catch((e: { stdout: string }) => e);
    expect(wrong.stdout).toMatch(/wrong\.ts.*Type 'string' is not assignable to type 'number'/);
  }, 60_000);
});
