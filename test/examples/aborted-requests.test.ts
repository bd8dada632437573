/**
 * A request whose client went away before its response was sent is not usage, whatever its status
 * says: the example server's `billable` rule (status < 500) once counted and billed twenty POSTs
 * whose clients disconnected before sending their body (100 units). Real sockets against the
 * built example server; the store, the ledger and the outbox are read after it stopped.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { readLedger } from '../../src';
import { Outbox } from '../../src/billing/outbox';
import { CLEAR_OF_MIDNIGHT_TIMEOUT_MS, clearOfMidnight, monthsBetween, sleep, startExampleServer, tempDir, waitFor } from '../helpers';

/** The allowed requests the example's /metrics has counted. */
async function allowed(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^daymind_requests_total\{outcome="allowed"\} (\d+)$/m.exec(text)![1]);
}

describe('examples/server.ts and requests whose client went away', () => {
  test(
    'twenty POSTs whose client went away before sending the body are not usage; a whole one is',
    async () => {
      // The ledger and requests_today are the server's real UTC day and month.
      await clearOfMidnight(30_000);
      const started = Date.now();
      const cwd = tempDir();
      const { child, url, out, exited } = await startExampleServer(cwd);
      const key = /\b(dm_[0-9A-Za-z]{28})\b/.exec(out())![1]!;
      const port = Number(new URL(url).port);
      const sockets: Socket[] = [];
      try {
        // Headers announcing 100 bytes, then 10 of them: the key check lets each through, and
        // express.json() waits for the rest, which never comes.
        for (let i = 0; i < 20; i++) {
          const socket = connect(port, '127.0.0.1');
          socket.on('error', () => undefined);
          socket.write(
            `POST /v1/echo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${key}\r\n` +
              `Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"hello":1`,
          );
          sockets.push(socket);
        }
        await waitFor(async () => (await allowed(url)) === 20, 10_000); // all twenty held in flight
        for (const socket of sockets) socket.destroy();
        await sleep(300); // the server sees the connections close

        const whole = await fetch(`${url}/v1/echo`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: '{"hello":1}',
        });
        expect([whole.status, await whole.json()]).toEqual([200, { echo: { hello: 1 }, cost: 5, owner: 'demo' }]);
      } finally {
        for (const socket of sockets) socket.destroy();
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0); // after close(): usage flushed, reports written and delivered
      const [record] = JSON.parse(readFileSync(join(cwd, 'data', 'api_keys.json'), 'utf8')) as Array<Record<string, unknown>>;
      expect(record).toMatchObject({ owner: 'demo', usage_count: 5, requests_today: 5 });
      const ledger = await readLedger(join(cwd, 'data'), monthsBetween(started, Date.now()));
      expect(ledger.map((e) => [e.owner, e.quantity])).toEqual([['demo', 5]]);
      expect((await new Outbox(join(cwd, 'data', 'billing-outbox.jsonl')).read()).pending).toEqual([]);
    },
    CLEAR_OF_MIDNIGHT_TIMEOUT_MS,
  );
});
