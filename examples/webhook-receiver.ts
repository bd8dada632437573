/**
 * A receiver of daymind-auth's usage alerts (`node build/examples/webhook-receiver.js`): a plain
 * `node:http` server on PORT (default 4000) taking POST /hooks. Each delivery is checked with
 * verifyWebhook() (Standard Webhooks: the signature of `webhook-id.webhook-timestamp.body` with
 * DAYMIND_WEBHOOK_SECRET, and a timestamp within 5 minutes) on the raw body, then printed as one
 * line. An alert can arrive twice (a delivery whose answer was lost is sent again, with the same
 * `webhook-id`): it is acted on once. See docs/alerts.md.
 */
import { createServer } from 'node:http';
import { ConfigError, verifyWebhook, WebhookVerificationError, type AlertEvent } from '../src';

const secret = process.env.DAYMIND_WEBHOOK_SECRET ?? '';
if (!secret.startsWith('whsec_')) throw new ConfigError('DAYMIND_WEBHOOK_SECRET', 'must be the whsec_ secret the server signs with');
const raw = process.env.PORT ?? '4000';
if (!/^\d+$/.test(raw) || Number(raw) > 65535) throw new ConfigError('PORT', `must be a TCP port number, got ${JSON.stringify(raw)}`);

/** Alerts acted on, by id. Keep them in a database in real use, so that a restart remembers them. */
const seen = new Set<string>();

/** What to do with an alert: here, one line on stdout. Mail the owner, open a ticket, ... */
function act(event: AlertEvent): void {
  const { data } = event;
  const threshold = data.threshold === null ? '' : ` threshold=${data.threshold}`;
  process.stdout.write(`alert ${event.type} owner=${data.owner} key=${data.key_prefix}${threshold} period=${data.period}\n`);
}

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/hooks') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let event: AlertEvent;
    try {
      event = verifyWebhook(secret, req.headers, Buffer.concat(chunks)) as AlertEvent;
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'invalid_webhook', message: err.message } }));
      return;
    }
    if (!seen.has(event.id)) {
      seen.add(event.id);
      act(event);
    }
    res.writeHead(204).end();
  });
});

server.listen(Number(raw), () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`webhook receiver listening on http://localhost:${port}/hooks\n`);
});
process.on('SIGTERM', () => server.close());
