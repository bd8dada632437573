import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Client, Pool } from 'pg';

/**
 * The machine's PostgreSQL server (127.0.0.1:5432, trust auth, user postgres), as CI starts it
 * (.ci/run). Each test file works in a database of its own, created here and dropped at the end.
 */
export const PG_HOST = process.env.DAYMIND_TEST_PGHOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.DAYMIND_TEST_PGPORT ?? 5432);

export function urlOf(database: string, port = PG_PORT): string {
  return `postgres://postgres@${PG_HOST}:${port}/${database}`;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool for assertions (closed by drop()). */
  pool: Pool;
  drop(): Promise<void>;
}

async function admin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: urlOf('postgres') });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${PG_HOST}:${PG_PORT} (${(err as Error).message}): start it (.ci/run does: pg_ctlcluster ... main start)`,
    );
  }
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates `daymind_test_<random>`; drop() removes it (after closing whatever still uses it). */
export async function createDatabase(): Promise<TestDatabase> {
  const name = `daymind_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const pool = new Pool({ connectionString: urlOf(name), max: 4 });
  pool.on('error', () => undefined);
  return {
    name,
    url: urlOf(name),
    pool,
    async drop() {
      await pool.end().catch(() => undefined);
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/**
 * A database for the whole test file (created in beforeAll, dropped in afterAll after `before`,
 * which closes what the tests left open on it).
 */
export function databaseForFile(before: () => Promise<void> = async () => undefined): { readonly db: TestDatabase } {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createDatabase();
  }, 20_000);
  afterAll(async () => {
    await before();
    await db?.drop();
  });
  return {
    get db() {
      return db!;
    },
  };
}

/**
 * A TCP proxy in front of the PostgreSQL server that the test controls: `freeze()` holds back the
 * server's replies (the server seems to hang; the queries still reach it and run, so a write can
 * be applied while its client times out), `cut()` drops every connection and refuses new ones
 * (the server seems gone), `restore()` puts things right.
 */
export interface TestProxy {
  port: number;
  freeze(): void;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort = PG_PORT): Promise<TestProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  let refusing = false;
  const server: Server = createServer((inbound) => {
    if (refusing) return void inbound.destroy();
    const outbound = connect(targetPort, PG_HOST);
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    for (const s of pair) {
      s.on('error', end);
      s.on('close', end);
    }
    inbound.pipe(outbound);
    if (!frozen) outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    freeze() {
      frozen = true;
      for (const [inbound, outbound] of pairs) {
        outbound.unpipe(inbound);
        outbound.pause();
      }
    },
    cut() {
      refusing = true;
      for (const pair of pairs) for (const s of pair) s.destroy();
      pairs.clear();
    },
    restore() {
      if (frozen) for (const [inbound, outbound] of pairs) outbound.pipe(inbound);
      frozen = false;
      refusing = false;
    },
    async close() {
      for (const pair of pairs) for (const s of pair) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
