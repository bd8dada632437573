import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook, type AlertEvent } from '../../src';

/**
 * A webhook receiver for the tests: verifies every delivery's signature (a bad one is kept in
 * `bad` and answered 401), counts the alerts it took, and answers 500 while `failing` is set.
 */
export interface TestReceiver {
  url: string;
  /** Alerts taken (2xx), in order, one entry per delivery. */
  taken: AlertEvent[];
  /** Deliveries answered 500 while failing. */
  refused: number;
  /** Deliveries whose signature did not verify. */
  bad: string[];
  failing: boolean;
  close(): Promise<void>;
}

export async function startReceiver(secret: string, now: () => number = Date.now, port = 0): Promise<TestReceiver> {
  const receiver: TestReceiver = { url: '', taken: [], refused: 0, bad: [], failing: false, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let event: AlertEvent;
      try {
        event = verifyWebhook(secret, req.headers, body, { now }) as AlertEvent;
        if (event.id !== req.headers['webhook-id']) throw new Error('webhook-id is not the event id');
      } catch (err) {
        receiver.bad.push((err as Error).message);
        res.writeHead(401).end();
        return;
      }
      if (receiver.failing) {
        receiver.refused++;
        res.writeHead(500).end();
        return;
      }
      receiver.taken.push(event);
      res.writeHead(204).end();
    });
  });
  server.listen(port, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return receiver;
}

/** How many times each `type:threshold` was taken. */
export function tally(events: AlertEvent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of events) {
    const name = `${e.type}:${e.data.threshold ?? ''}`;
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
