import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { realClockEnv } from '../helpers';

/** A redis-server of the test's own on a free port, with an append-only file so that it can restart. */
export interface TestRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL: an outage, not a clean shutdown). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, commands get no answer. */
  pause(): void;
  /** Lets a frozen server go on (SIGCONT); it then answers what it was sent meanwhile. */
  resume(): void;
  /** A client for assertions. */
  client(): Redis;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const start = Date.now();
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') {
        probe.disconnect();
        return;
      }
    } catch {
      probe.disconnect();
    }
    if (Date.now() - start > timeoutMs) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts redis-server from PATH. CI installs Debian's redis-server, so these suites always run
 * there; a machine without the binary fails loudly rather than skipping.
 */
export async function startRedis(): Promise<TestRedis> {
  if (spawnSync('redis-server', ['--version'], { env: realClockEnv() }).status !== 0) {
    throw new Error('redis-server is not installed: install it (apt-get install redis-server); .ci/run does this');
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'daymind-redis-'));
  const clients: Redis[] = [];
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--logfile',
        join(dir, 'log'),
      ],
      { stdio: 'ignore', env: realClockEnv() },
    );
    await waitForPing(port, 10_000);
  };
  const stop = async () => {
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc!.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop,
    pause: () => void proc?.kill('SIGSTOP'),
    resume: () => void proc?.kill('SIGCONT'),
    client() {
      const c = new Redis({ port, host: '127.0.0.1' });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    async close() {
      proc?.kill('SIGCONT'); // a test that failed while it was frozen: its clients' QUIT must be answered
      await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A TestRedis for the whole test file (started in beforeAll, closed in afterAll), with an admin client. */
export function redisForFile(): { readonly server: TestRedis; readonly admin: Redis } {
  let server: TestRedis | undefined;
  let admin: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    admin = server.client();
  }, 20_000);
  afterAll(async () => {
    await server?.close();
  });
  return {
    get server() {
      return server!;
    },
    get admin() {
      return admin!;
    },
  };
}
