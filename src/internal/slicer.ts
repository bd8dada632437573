import { performance } from 'node:perf_hooks';
// Node's own, not the global: fake timers in a user's tests must not stall a flush.
import { setImmediate } from 'node:timers';

/** How long background work runs before it lets requests in, in ms. */
export const SLICE_BUDGET_MS = 5;

/** Lets the event loop run (requests, timers) between two slices of long work. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Long work on the event loop (a large store's flush) cut into slices by time, not by count:
 * each runs for about `budgetMs`, then the event loop gets a turn. A count would be too much on a
 * slow machine and far too little on a fast one; under load a yield waits for a whole turn of
 * requests, so slices of a few records made a 100,000-key flush take seconds.
 *
 *     const slicer = new WorkSlicer();
 *     for (const item of items) {
 *       work(item);
 *       if (slicer.due()) await slicer.yield();
 *     }
 */
export class WorkSlicer {
  private started = performance.now();

  constructor(private readonly budgetMs = SLICE_BUDGET_MS) {}

  /** Whether this slice has used its time (a clock read, no promise: cheap enough for every item). */
  due(): boolean {
    return performance.now() - this.started >= this.budgetMs;
  }

  /** Lets the event loop run, then starts the next slice. */
  async yield(): Promise<void> {
    await yieldToEventLoop();
    this.started = performance.now();
  }
}
