import type { Notification } from 'pg';
import type { PgClient, PgPool } from './connect';

/** How long after a lost LISTEN connection the next attempt goes out. */
const RECONNECT_MS = 500;

/**
 * Holds one connection of the pool listening on a channel, and calls `onNotify` for each
 * notification. A lost connection is replaced in the background; `onConnected` is called each
 * time it listens (again), so that the caller can fetch what it may have missed meanwhile.
 */
export class PgListener {
  private client: PgClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private connecting: Promise<void> | undefined;

  constructor(
    private readonly pool: PgPool,
    private readonly channel: string,
    private readonly onNotify: (payload: string) => void,
    private readonly onConnected: () => void,
  ) {}

  /** Starts listening; resolves once listening or once the first attempt failed (it is retried). */
  start(): Promise<void> {
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  get listening(): boolean {
    return this.client !== undefined;
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.client) return;
    let client: PgClient | undefined;
    try {
      client = await this.pool.connect();
      const held = client;
      const lost = (err?: Error) => this.lost(held, err ?? new Error('the LISTEN connection ended'));
      held.on('error', lost);
      held.on('end', () => lost());
      held.on('notification', (message: Notification) => this.onNotify(message.payload ?? ''));
      await held.query(`LISTEN "${this.channel}"`);
      if (this.stopped) return this.lost(held, undefined);
      this.client = held;
      this.onConnected();
    } catch (err) {
      if (client) this.lost(client, err as Error);
      else this.retry();
    }
  }

  private lost(client: PgClient, err: Error | undefined): void {
    if (this.client === client) this.client = undefined;
    client.removeAllListeners('notification');
    try {
      // Released broken (or at stop): the pool closes it rather than handing out a listening connection.
      client.release(err ?? true);
    } catch {
      // already released
    }
    this.retry();
  }

  private retry(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.start();
    }, RECONNECT_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.connecting;
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.release(true);
    }
  }
}
