export interface OneRunAtATime {
  (): Promise<void>;
  /** Resolves when no run is under way or waiting (without starting one). */
  idle(): Promise<void>;
}

/**
 * Wraps a background job so that at most one run is under way and at most one more waits behind
 * it: a burst of calls costs two runs, and every caller's promise settles after a run that started
 * after its call.
 */
export function oneRunAtATime(run: () => Promise<void>): OneRunAtATime {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const call = (): Promise<void> => {
    if (queued) return queued;
    if (running) {
      queued = running.then(() => {
        queued = undefined;
        return call();
      });
      return queued;
    }
    running = run().finally(() => {
      running = undefined;
    });
    return running;
  };
  return Object.assign(call, { idle: async () => void (await (queued ?? running)) });
}
