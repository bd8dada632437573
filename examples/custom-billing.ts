/**
 * A BillingProvider of your own: `WEBHOOK_URL=https://... node build/examples/custom-billing.js`.
 *
 * Every usage report is POSTed as JSON to a webhook (your billing system, Lago, a queue).
 * daymind-auth keeps reports in its durable outbox until `deliver` resolves, retries failures with
 * backoff, and sends a report it refuses for good (a BillingRejection) to the dead-letter file.
 * The report's identifier is stable across retries: let the receiver ignore one it has seen.
 */
import express from 'express';
import { BillingRejection, daymindAuth, type BillingProvider, type UsageReport } from '../src';

export class WebhookBilling implements BillingProvider {
  readonly name = 'webhook';

  constructor(private readonly url: string) {}

  async deliver(report: UsageReport): Promise<void> {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': report.identifier },
      body: JSON.stringify(report),
      signal: AbortSignal.timeout(10_000),
    });
    if (res.ok) return;
    // 4xx other than 408/429: the receiver will never take it. Anything else: try again later.
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
      throw new BillingRejection(`webhook answered ${res.status}`);
    }
    throw new Error(`webhook answered ${res.status}`);
  }
}

function main(): void {
  const url = process.env.WEBHOOK_URL;
  if (!url) throw new Error('WEBHOOK_URL: set it to the URL that receives usage reports');
  const auth = daymindAuth({ billing: new WebhookBilling(url) });
  const app = express();
  app.use('/v1', auth, auth.usageRouter());
  app.get('/v1/hello', (req, res) => res.json({ owner: req.daymind!.owner }));
  const server = app.listen(Number(process.env.PORT ?? 3003), async () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 3003;
    console.log(`custom-billing example listening on http://localhost:${port}, reporting usage to ${url}`);
    const { key } = await auth.store.create({ owner: 'webhook-demo' });
    console.log(`demo key: ${key}`);
  });
  const stop = () => server.close(() => void auth.close().then(() => process.exit(0)));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) main();
