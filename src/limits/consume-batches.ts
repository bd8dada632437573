// Node's own, not the global: fake timers in a user's tests must not hold consumes back.
import { setImmediate } from 'node:timers';

/** One counter to spend on: its Redis key, the units, and its window's length in seconds. */
export interface CounterConsume {
  key: string;
  cost: number;
  windowSeconds: number;
}

/** A counter after a consume: the units spent in its window, and the milliseconds to its reset. */
export interface CounterState {
  consumed: number;
  ttlMs: number;
}

interface Waiting {
  consume: CounterConsume;
  resolve(state: CounterState): void;
  reject(err: unknown): void;
}

/**
 * The consumes asked for during one turn of the event loop, sent together at its end (the check
 * phase) by `send`, in the order they were asked for. Under load the IP and key windows of many
 * requests then share one script call and one round trip. A batch that fails fails each of its
 * consumes with the same error.
 */
export class ConsumeBatches {
  private waiting: Waiting[] = [];

  constructor(private readonly send: (consumes: CounterConsume[]) => Promise<CounterState[]>) {}

  add(consume: CounterConsume): Promise<CounterState> {
    return new Promise((resolve, reject) => {
      if (this.waiting.length === 0) setImmediate(() => this.sendWaiting());
      this.waiting.push({ consume, resolve, reject });
    });
  }

  private sendWaiting(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.send(batch.map((w) => w.consume)).then(
      (states) => batch.forEach((w, i) => w.resolve(states[i]!)),
      (err: unknown) => batch.forEach((w) => w.reject(err)),
    );
  }
}
