/**
 * docs/getting-started.md as a new user follows it: its `server.js`, with Express 5 and with
 * Express 4, on the built package; the requests of its "Call it" section (the refusals, and a body
 * its error handler answers), which must answer the bodies the doc shows; and what it says happens
 * when the port is in use.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { JsonFileKeyStore } from '../../src';
import { tempDir, waitFor } from '../helpers';

const root = resolve(__dirname, '../..');
const doc = readFileSync(join(root, 'docs', 'getting-started.md'), 'utf8');
/** The code block under "`server.js`:". */
const serverJs = /`server\.js`:\n\n```js\n([\s\S]*?)```/.exec(doc)![1]!;

/** Every `$ command` line of the doc's console blocks, with the output shown under it. */
function shownCommands(): Array<{ command: string; output: string }> {
  const shown = [];
  for (const [, block] of doc.matchAll(/```console\n([\s\S]*?)```/g)) {
    for (const part of block!.split(/^\$ /m).slice(1)) {
      const [command, ...output] = part.trimEnd().split('\n');
      shown.push({ command: command!, output: output.join('\n') });
    }
  }
  return shown;
}

/**
 * The request of a doc line `curl [-H "Name: value"]... [-d 'body'] http://localhost:3000/...`, sent
 * to `port`, with the doc's placeholder `dm_...` replaced by `key`. With `-d`, a POST of that body.
 */
function curl(command: string, port: number, key = 'dm_...'): Promise<Response> {
  const parsed = /^curl((?: -H "[^"]*")*)(?: -d '([^']*)')? http:\/\/localhost:3000(\/\S*)$/.exec(command);
  if (!parsed) throw new Error(`not a curl command this test understands: ${command}`);
  const headers = [...parsed[1]!.matchAll(/-H "([^:"]+): ([^"]*)"/g)].map(([, name, value]) => [name!, value!.replace('dm_...', key)]);
  const body = parsed[2];
  return fetch(`http://localhost:${port}${parsed[3]}`, { headers: Object.fromEntries(headers), method: body ? 'POST' : 'GET', body });
}

/** A project holding the doc's server.js, with daymind-auth (this repository's build) and `express` installed. */
function project(express: string): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'daymind-auth'), 'dir');
  symlinkSync(join(root, 'node_modules', express), join(dir, 'node_modules', 'express'), 'dir');
  writeFileSync(join(dir, 'server.js'), serverJs);
  return dir;
}

/** `node server.js` in `dir` with PORT set; its output so far, and its exit code once it has closed its output. */
function startServer(dir: string, port: number) {
  const child = spawn(process.execPath, ['server.js'], { cwd: dir, env: { PATH: process.env.PATH, PORT: String(port) } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return { child, out: () => out, err: () => err, closed };
}

async function listening(port = 0): Promise<Server> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(port, r));
  return server;
}
const portOf = (server: Server): number => (server.address() as { port: number }).port;
const close = (server: Server): Promise<unknown> => new Promise((r) => server.close(r));

async function freePort(): Promise<number> {
  const server = await listening();
  const port = portOf(server);
  await close(server);
  return port;
}

describe.each([
  ['Express 5', 'express'],
  ['Express 4', 'express4'],
])('docs/getting-started.md server.js with %s', (_name, express) => {
  test('serves a key, and refuses with exactly the bodies the doc shows', async () => {
    const dir = project(express);
    const store = new JsonFileKeyStore({ path: join(dir, 'data', 'api_keys.json') });
    const { key } = await store.create({ owner: 'my-team' });
    await store.close();
    const port = await freePort();
    const server = startServer(dir, port);
    try {
      await waitFor(() => server.out() !== '' || server.child.exitCode !== null, 10_000);
      expect([server.out(), server.err()]).toEqual([`listening on http://localhost:${port}\n`, '']);

      const hello = await curl(`curl -H "Authorization: Bearer ${key}" http://localhost:3000/v1/hello`, port);
      expect([hello.status, await hello.json()]).toEqual([200, { hello: 'my-team' }]);
      // The usage router on the same line: its page opens without a key; /v1/usage is not usage itself.
      const page = await curl('curl http://localhost:3000/v1/usage/dashboard', port);
      expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8']);
      expect(await page.text()).toContain('<title>API usage</title>');
      for (let i = 0; i < 2; i++) {
        const usage = await curl(`curl -H "Authorization: Bearer ${key}" http://localhost:3000/v1/usage`, port);
        expect([usage.status, ((await usage.json()) as { usage_count: number }).usage_count]).toEqual([200, 1]);
      }

      const shown = shownCommands();
      const codes = shown.map(({ output }) => (JSON.parse(output) as { error: { code: string } }).error.code);
      expect(codes).toEqual(['missing_api_key', 'malformed_api_key', 'invalid_api_key', 'invalid_json']);
      for (const { command, output } of shown) {
        const res = await curl(command, port, key);
        const { code, message } = (JSON.parse(output) as { error: { code: string; message: string } }).error;
        const status = code === 'invalid_json' ? 400 : 401;
        expect([command, res.status, res.headers.get('cache-control'), await res.text()]).toEqual([command, status, 'no-store', output]);
        const challenge =
          status === 400 ? null : code === 'missing_api_key' ? 'Bearer' : `Bearer error="invalid_token", error_description="${message}"`;
        expect([command, res.headers.get('www-authenticate')]).toEqual([command, challenge]);
      }
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.closed).toBe(0);
  });

  test('a port in use: the line the doc shows, on stderr, and exit status 1', async () => {
    const taken = await listening();
    try {
      const port = portOf(taken);
      const server = startServer(project(express), port);
      expect(await server.closed).toBe(1);
      expect([server.out(), server.err()]).toEqual(['', `port ${port} is already in use (set PORT to use another)\n`]);
      const line = server.err().trim().replace(String(port), '3000');
      expect(doc).toContain(`\`${line}\` on stderr and exits with status 1`);
    } finally {
      await close(taken);
    }
  });
});
