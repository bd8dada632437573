import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import { Registry } from 'prom-client';
import request from 'supertest';
import { daymindAuth, metricsHandler, type DaymindAuth } from '../src';
import { tempDir } from './helpers';

/** `promtool check metrics` (Debian's prometheus package; .ci/run installs it) on a scrape. */
function promtool(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool is not installed: apt-get install prometheus (${run.error.message})`);
  return { status: run.status, output: run.stdout + run.stderr };
}

const open: DaymindAuth[] = [];

async function scrape(options: Parameters<typeof metricsHandler>[1], authOptions: Parameters<typeof daymindAuth>[0] = {}): Promise<string> {
  const auth = daymindAuth({ env: {}, storePath: join(tempDir(), 'api_keys.json'), onError: () => undefined, ...authOptions });
  open.push(auth);
  const { key } = await auth.store.create({ owner: 'acme' });
  const app = express();
  app.get('/metrics', metricsHandler(auth, options));
  app.use(auth).get('/hello', (req, res) => res.json({}));
  await request(app).get('/hello').set('x-api-key', key).expect(200);
  await request(app).get('/hello').expect(401);
  return (await request(app).get('/metrics').expect(200)).text;
}

describe('the metrics pass Prometheus linting', () => {
  // Inside the describe, so that it runs before helpers' afterAll removes the temp dirs.
  afterAll(async () => {
    for (const a of open) await a.close();
  });
  test.each([[{}], [{ ownerLabel: true }]])('daymind-auth metrics with %j: promtool reports nothing', async (options) => {
    expect(execFileSync('promtool', ['--version'], { encoding: 'utf8' })).toMatch(/promtool/);
    const text = await scrape({ registry: new Registry(), ...options });
    expect(text).toContain('daymind_requests_total{');
    expect(promtool(text)).toEqual({ status: 0, output: '' });
  });

  test('with usage alerts on, the alert counters pass too', async () => {
    const text = await scrape({ registry: new Registry() }, { alerts: true });
    expect(text).toContain('# TYPE daymind_alert_events_emitted_total counter\ndaymind_alert_events_emitted_total 0\n');
    expect(text).toContain('daymind_alert_webhooks_delivered_total 0\n');
    expect(text).toContain('daymind_alert_webhooks_failed_total 0\n');
    expect(promtool(text)).toEqual({ status: 0, output: '' });
  });

  test("with prom-client's default metrics, promtool says what docs/observability.md shows", async () => {
    const { status, output } = promtool(await scrape({ registry: new Registry(), collectDefaultMetrics: true }));
    expect(status).toBe(3);
    const doc = readFileSync(join(__dirname, '../docs/observability.md'), 'utf8');
    expect(doc).toContain('```\n' + output.trim().split('\n').sort().join('\n') + '\n```');
  });
});
