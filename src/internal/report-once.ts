/**
 * Passes problems to an onError hook once each while they last: the same problem again (by
 * default, the same message) is dropped until `clear()` says it is over or another one comes.
 */
export class OnceReporter<E extends Error = Error> {
  private last: string | undefined;

  constructor(private readonly onError: (err: E) => void) {}

  report(err: E, key: string = err.message): void {
    if (key === this.last) return;
    this.last = key;
    this.onError(err);
  }

  clear(): void {
    this.last = undefined;
  }
}
