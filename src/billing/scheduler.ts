import { BillingRejection, BillingRetryLater } from './rejection';
import type { BillingProvider, DeliveryOutcome, UsageReport } from './types';

export interface SchedulerOptions {
  /** Calls in flight at once. */
  concurrency: number;
  /** Most calls started a second. */
  callsPerSecond: number;
  /** Longest wait for one call; past it the call counts as failed and its reports are retried. */
  timeoutMs: number;
}

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 60_000;

/** Whose calls must not overlap: the Stripe customer (Stripe allows one call at a time per customer and meter), else the key. */
export const customerOf = (report: UsageReport): string => report.customer_id ?? `key:${report.key_hash}`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `promise`, or a rejection after `ms`: a provider that never answers must not stop delivery. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Hands reports to a provider: up to `concurrency` calls at once, never two for the same customer,
 * no more than `callsPerSecond` started in a second (a token bucket holding 1/20 s of calls), and
 * a customer whose call failed backs off alone (0.5 s doubling up to 60 s, or what a
 * BillingRetryLater says: a 429's Retry-After) while the others go on. Waits are durations, on
 * the monotonic clock.
 */
export class DeliveryScheduler {
  private readonly backoff = new Map<string, { attempts: number; until: number }>();
  private tokens = 1;
  private refilledAt = performance.now();

  constructor(
    private readonly provider: BillingProvider,
    private readonly options: SchedulerOptions,
  ) {}

  /** Customers backing off now. */
  backingOff(): number {
    const now = performance.now();
    let count = 0;
    for (const wait of this.backoff.values()) if (wait.until > now) count++;
    return count;
  }

  /**
   * Offers `reports` (oldest first) to the provider until each was tried once, until `deadline`
   * (performance.now()), or until `keepGoing` says no. `settled` hears each report tried, with its
   * outcome. Reports of a customer backing off wait for a later run; `unpaced` ones (no remote
   * call) take no token.
   */
  async run(
    reports: UsageReport[],
    deadline: number,
    settled: (report: UsageReport, outcome: DeliveryOutcome) => void,
    unpaced: (report: UsageReport) => boolean = () => false,
    keepGoing: () => boolean = () => true,
  ): Promise<void> {
    const start = performance.now();
    const queues = new Map<string, UsageReport[]>();
    for (const report of reports) {
      const customer = customerOf(report);
      if ((this.backoff.get(customer)?.until ?? 0) > start) continue;
      const queue = queues.get(customer);
      if (queue) queue.push(report);
      else queues.set(customer, [report]);
    }
    const ready = [...queues.keys()];
    let head = 0;
    const inFlight = new Set<Promise<void>>();
    const batchSize = this.provider.deliverBatch ? Math.max(1, this.provider.batchSize ?? 100) : 1;
    while (head < ready.length || inFlight.size > 0) {
      if (head < ready.length && (performance.now() >= deadline || !keepGoing())) head = ready.length; // let the calls in flight finish
      if (head >= ready.length || inFlight.size >= this.options.concurrency) {
        if (inFlight.size === 0) break;
        await Promise.race(inFlight);
        continue;
      }
      const first = queues.get(ready[head]!)![0]!;
      if (!(batchSize === 1 && unpaced(first)) && !(await this.token(deadline))) {
        head = ready.length; // out of time: let the calls in flight finish
        continue;
      }
      const batch: UsageReport[] = [];
      const customers: string[] = [];
      while (head < ready.length && batch.length < batchSize) {
        const customer = ready[head++]!;
        const queue = queues.get(customer)!;
        batch.push(...queue.splice(0, batchSize - batch.length));
        customers.push(customer);
      }
      const call = this.call(batch).then((outcomes) => {
        inFlight.delete(call);
        const failed = new Set<string>();
        batch.forEach((report, i) => {
          const outcome =
            i < outcomes.length ? (outcomes[i] as DeliveryOutcome) : new Error(`${this.provider.name} answered no outcome for this report`);
          settled(report, outcome);
          if (outcome !== null && !(outcome instanceof BillingRejection)) {
            const customer = customerOf(report);
            if (!failed.has(customer)) this.fail(customer, outcome);
            failed.add(customer);
          }
        });
        for (const customer of customers) {
          if (failed.has(customer)) continue; // backs off: its other reports wait for a later run
          this.backoff.delete(customer);
          if (queues.get(customer)!.length > 0) ready.push(customer);
        }
      });
      inFlight.add(call);
    }
  }

  /** One call: outcomes in the order of `batch`; a call that throws fails each of its reports. */
  private async call(batch: UsageReport[]): Promise<DeliveryOutcome[]> {
    const what = `${this.provider.deliverBatch ? 'deliverBatch' : 'deliver'}() of "${this.provider.name}"`;
    try {
      if (this.provider.deliverBatch) return await withTimeout(this.provider.deliverBatch(batch), this.options.timeoutMs, what);
      await withTimeout(this.provider.deliver(batch[0]!), this.options.timeoutMs, what);
      return [null];
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      return batch.map(() => error);
    }
  }

  private fail(customer: string, err: Error): void {
    const attempts = (this.backoff.get(customer)?.attempts ?? 0) + 1;
    const wait = err instanceof BillingRetryLater ? err.retryAfterMs : Math.min(FIRST_BACKOFF_MS * 2 ** (attempts - 1), MAX_BACKOFF_MS);
    this.backoff.set(customer, { attempts, until: performance.now() + wait });
  }

  /** Takes a token, waiting for one up to `deadline`; false when none comes in time. */
  private async token(deadline: number): Promise<boolean> {
    const rate = this.options.callsPerSecond;
    const burst = Math.max(1, rate / 20);
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) * rate) / 1000);
      this.refilledAt = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return true;
      }
      const wait = ((1 - this.tokens) * 1000) / rate;
      if (now + wait > deadline) return false;
      await sleep(Math.max(1, wait));
    }
  }
}
