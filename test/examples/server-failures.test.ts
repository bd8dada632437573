/**
 * The example server (examples/server.ts, what users copy) on its failure paths: a body it cannot
 * read, and a route it does not have, are answered in JSON, never with Express's HTML page, a
 * stack trace or a file path.
 */
import { join } from 'node:path';
import { startExampleServer, tempDir } from '../helpers';

const root = join(__dirname, '..', '..');

/** The demo key the example prints on an empty store (scopes read and write). */
const demoKey = (out: string): string => /\b(dm_[0-9A-Za-z]{28})\b/.exec(out)![1]!;

describe('examples/server.ts on its failure paths', () => {
  test('a body it cannot read, and an unknown route, get JSON errors without a stack', async () => {
    const { child, url, out, exited } = await startExampleServer(tempDir());
    try {
      const post = (body: string) =>
        fetch(`${url}/v1/echo`, {
          method: 'POST',
          headers: { authorization: `Bearer ${demoKey(out())}`, 'content-type': 'application/json' },
          body,
        });
      const answers = [
        await post('{"hello":'),
        await post(JSON.stringify({ text: 'x'.repeat(200_000) })),
        await fetch(`${url}/v1/nope`, { headers: { authorization: `Bearer ${demoKey(out())}` } }),
      ];
      const seen = [];
      for (const res of answers) {
        const text = await res.text();
        expect(text).not.toMatch(/\bat .*:\d+|Error:|node_modules/);
        expect(text).not.toContain(root);
        seen.push([res.status, res.headers.get('content-type'), JSON.parse(text)]);
      }
      expect(seen).toEqual([
        [400, 'application/json; charset=utf-8', { error: { code: 'invalid_json', message: 'The request body is not valid JSON.' } }],
        [
          413,
          'application/json; charset=utf-8',
          { error: { code: 'payload_too_large', message: 'The request body is larger than the 102400 bytes this endpoint accepts.' } },
        ],
        [
          404,
          'application/json; charset=utf-8',
          { error: { code: 'not_found', message: 'There is no GET /v1/nope; GET / lists the endpoints.' } },
        ],
      ]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
