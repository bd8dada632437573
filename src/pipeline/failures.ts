import { DaymindError, describeError } from '../errors';
import { OnceReporter } from '../internal/report-once';

/** Failures of the quota and credits stage: a request that did not spend says nothing of their end. */
const SPENDING = new Set(['quota and credits check failed', 'giving back quota and credits failed']);

/**
 * The outages of the check's stages, each reported once while it lasts (by what failed), not once
 * a request. One reporter for all would report the quota stage's failure again after every
 * allowed key without a quota while Redis is down (fail open).
 */
export class Failures {
  private readonly reporters = new Map<string, OnceReporter>();

  constructor(private readonly onError: (err: Error) => void) {}

  report(what: string, err: unknown): void {
    let reporter = this.reporters.get(what);
    if (!reporter) this.reporters.set(what, (reporter = new OnceReporter(this.onError)));
    reporter.report(new DaymindError('ERR_DAYMIND_UNAVAILABLE', `${what}: ${describeError(err)}`, { cause: err }));
  }

  /** An allowed request got through the look-up and the limiter, and through the quota stage when it had one. */
  recovered(spent: boolean): void {
    for (const [what, reporter] of this.reporters) if (spent || !SPENDING.has(what)) reporter.clear();
  }
}
