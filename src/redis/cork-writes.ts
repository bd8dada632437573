import type { Writable } from 'node:stream';
// Node's own, not the global: fake timers in a user's tests must not keep commands corked.
import { setImmediate } from 'node:timers';

/** Streams corked until the current turn of the event loop ends. */
const corked = new WeakSet<Writable>();

/**
 * Lets the commands that a client sends during this turn of the event loop go out in one socket
 * write: its stream is corked now and uncorked in the check phase (setImmediate), after every
 * request callback of the turn has run. Under load the limiter's commands of many requests then
 * share a write (and Redis a read) instead of costing a system call each; replies are unchanged,
 * as ioredis still sends and matches the commands in order. A client without a single stream
 * (a Cluster) is left alone.
 */
export function corkWritesForThisTurn(client: unknown): void {
  const stream = (client as { stream?: Writable }).stream;
  if (!stream || typeof stream.cork !== 'function' || corked.has(stream)) return;
  stream.cork();
  corked.add(stream);
  setImmediate(() => {
    corked.delete(stream);
    stream.uncork();
  });
}
