import { DaymindError, describeError } from '../errors';
import type { LocalLedgerProvider } from './ledger';
import { PaddleClient, paddleApiError, type PaddleApiError } from './paddle-client';
import { PaddleJournal, type PaddleCharge } from './paddle-journal';
import { BillingRejection, BillingRetryLater } from './rejection';
import type { BillingProvider, UsageReport } from './types';

export interface PaddleBillingOptions {
  /** `PADDLE_API_KEY`. */
  apiKey: string;
  /** `PADDLE_ENVIRONMENT`: `production` (default) or `sandbox`. */
  environment?: 'production' | 'sandbox';
  /** Another API server (a test server): `PADDLE_API_BASE`, e.g. `http://localhost:8080`. */
  apiBase?: string;
  /** The charge journal (`paddle-charges.jsonl` in the ledger directory). */
  journalPath: string;
  /** How long after an unanswered charge its outcome is looked up at Paddle, in ms. Default 60 s. */
  recheckAfterMs?: number;
  /** Whether a report is still waiting in the outbox: the journal keeps its charge until it is not. */
  stillPending?: (identifier: string) => boolean;
  /** Where each report charged is also written by deliver() (as StripeBillingOptions.ledger). */
  ledger?: LocalLedgerProvider;
  /** Warnings (a key without a Paddle subscription, once per key; a damaged journal). */
  onError: (err: Error) => void;
  /** The clock, in ms. Default `Date.now`. */
  now?: () => number;
}

/** The report's account in Paddle mode: `sub_...` and the price, as `customer_id`. */
export function paddleAccount(subscription: string, price: string): string {
  return `${subscription}/${price}`;
}

function parseAccount(account: string): { subscription: string; price: string } {
  const [subscription = '', price = ''] = account.split('/');
  return { subscription, price };
}

/** A Paddle mode account: `sub_...` and `/pri_...`. */
const ACCOUNT = /^sub_[a-z0-9]{26}\/pri_[a-z0-9]{26}$/;

/** Journal size past which it is compacted. */
const COMPACT_BYTES = 256 * 1024;

/** Paddle's error codes that mean "not now" rather than "never". */
const TRANSIENT = /^(authentication_|invalid_token|forbidden|unauthorized|.*locked|.*conflict|too_many_requests|service_unavailable)/;

/** The error to throw for a Paddle API error answer (nothing was done by it). */
function answerError(what: string, api: PaddleApiError): Error {
  const message = `Paddle answered ${what} with ${api.type} ${api.code}: ${api.detail}`;
  if (api.code === 'too_many_requests') return new BillingRetryLater(message, (api.retryAfter ?? 1) * 1000);
  if (api.type !== 'request_error' || TRANSIENT.test(api.code)) return new Error(message);
  return new BillingRejection(message);
}

/**
 * Paddle Billing through the official Node.js SDK: each report becomes a one-time charge on the
 * key's subscription (`POST /subscriptions/{id}/charge`, billed with the next renewal), of the
 * report's units of the key's usage price. Paddle takes no idempotency key, so each charge is
 * recorded in a journal before the call, with what the subscription's next renewal held of that
 * price (`GET /subscriptions/{id}?include=next_transaction`), and marked charged after it. A
 * charge whose answer never came (a network failure, a 5xx, a process killed) is looked up at
 * Paddle, `recheckAfterMs` later, before anything else is charged to that subscription and price:
 * the renewal holds the units it held plus the charge's (made), or as many as before (not made;
 * sent again). After a renewal in between, the renewal's transaction is found in
 * `GET /transactions?subscription_id=...`. Anything else (units the journal cannot explain: the
 * price used outside daymind-auth) stops that subscription's charges and is reported until
 * resolved by hand. Keys without a subscription make no call: ledger only, with one warning.
 */
export class PaddleBillingProvider implements BillingProvider {
  readonly name = 'paddle';
  private readonly client: PaddleClient;
  private readonly journal: PaddleJournal;
  private readonly warned = new Set<string>();
  /** Accounts with a call under way (also one the scheduler gave up waiting for). */
  private readonly busy = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly options: PaddleBillingOptions) {
    this.client = new PaddleClient(options.apiKey, options);
    this.journal = new PaddleJournal(options.journalPath);
    this.now = options.now ?? Date.now;
  }

  /** Whether a report makes calls to Paddle (it has a subscription): the others take no place under the ceiling. */
  calls(report: UsageReport): boolean {
    return report.customer_id !== null;
  }

  async deliver(report: UsageReport): Promise<void> {
    if (report.customer_id) await this.charge(report, report.customer_id);
    else if (!this.warned.has(report.key_hash)) {
      this.warned.add(report.key_hash);
      this.options.onError(
        new DaymindError(
          'ERR_DAYMIND_BILLING',
          `key ${report.key_prefix} (${report.owner}) has no paddle_subscription_id: its usage goes to the local ledger only`,
        ),
      );
    }
    await this.options.ledger?.deliver(report);
  }

  private async charge(report: UsageReport, account: string): Promise<void> {
    if (!ACCOUNT.test(account)) {
      throw new BillingRejection(
        `the usage was recorded for "${account}", not a Paddle subscription and price (in another billing mode): it is not charged to Paddle`,
      );
    }
    // A call the scheduler stopped waiting for may still be under way: nothing more for this account until it ends.
    if (this.busy.has(account)) throw new BillingRetryLater(`a Paddle call for ${account} is still under way`, 1000);
    this.busy.add(account);
    try {
      await this.journal.refresh();
      if (this.journal.isCharged(report.identifier)) return;
      const { subscription, price } = parseAccount(account);
      for (const uncertain of this.journal.uncertain(subscription, price)) await this.settle(uncertain);
      if (this.journal.isCharged(report.identifier)) return;
      if (report.quantity === 0) return;
      const before = await this.call('GET /subscriptions/{id}', () => this.client.nextCharges(subscription, price));
      const entry: PaddleCharge = {
        report: report.identifier,
        subscription,
        price,
        quantity: report.quantity,
        period: before.period,
        before: before.units,
        at: this.now(),
      };
      await this.journal.write({ charging: entry });
      try {
        await this.client.charge(subscription, price, report.quantity);
      } catch (err) {
        const api = paddleApiError(err);
        // A 4xx answer: Paddle did nothing. Anything else: uncertain, looked up before the next charge.
        if (api?.type === 'request_error') {
          await this.journal.write({ void: report.identifier });
          throw answerError(`POST /subscriptions/${subscription}/charge`, api);
        }
        throw new Error(
          `Paddle charge of ${report.quantity} unit(s) to ${subscription} has no answer (${describeError(err)}); ` +
            'whether it was made is looked up at Paddle before that subscription is charged again',
          { cause: err },
        );
      }
      await this.journal.write({ charged: report.identifier });
      await this.compactIfWorthIt();
    } finally {
      this.busy.delete(account);
    }
  }

  /** Finds out whether an uncertain charge was made, and records it; throws while it cannot tell yet. */
  private async settle(charge: PaddleCharge): Promise<void> {
    const wait = charge.at + (this.options.recheckAfterMs ?? 60_000) - this.now();
    if (wait > 0) {
      throw new BillingRetryLater(`a Paddle charge to ${charge.subscription} without answer is looked up at Paddle in ${wait} ms`, wait);
    }
    const made = await this.wasMade(charge);
    if (made === undefined) {
      throw new Error(
        `cannot tell whether the Paddle charge of ${charge.quantity} unit(s) of ${charge.price} to ${charge.subscription} ` +
          `(report ${charge.report}) was made: the subscription holds units of that price the journal ${this.journal.path} does not explain; ` +
          `nothing more is charged to it until you check it in Paddle and append {"charged":"${charge.report}"} or {"void":"${charge.report}"} to the journal`,
      );
    }
    await this.journal.write(made ? { charged: charge.report } : { void: charge.report });
  }

  /** true: Paddle has the charge; false: it does not; undefined: the units do not tell. */
  private async wasMade(charge: PaddleCharge): Promise<boolean | undefined> {
    const { subscription, price, quantity, before, period } = charge;
    const now = await this.call('GET /subscriptions/{id}', () => this.client.nextCharges(subscription, price));
    if (now.period === period) return now.units === before + quantity ? true : now.units === before ? false : undefined;
    // Renewed since: the charge is on the renewal's transaction, or (sent after the renewal) on the next one.
    if (period !== null) {
      const renewal = await this.call('GET /transactions', () => this.client.renewalUnits(subscription, price, period));
      if (renewal === undefined) return undefined;
      if (renewal === before + quantity) return true;
      if (renewal !== before) return undefined;
    }
    return now.units === quantity ? true : now.units === 0 ? false : undefined;
  }

  /** A read-only call: an error answer becomes the error to throw. */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      const api = paddleApiError(err);
      if (api) throw answerError(what, api);
      throw new Error(`Paddle ${what} failed: ${describeError(err)}`, { cause: err });
    }
  }

  private async compactIfWorthIt(): Promise<void> {
    const keep = this.options.stillPending;
    if (!keep) return;
    await this.journal.refresh();
    if (this.journal.bytes < COMPACT_BYTES) return;
    const damaged = await this.journal.compact(keep);
    if (damaged.length === 0) return;
    this.options.onError(
      new DaymindError(
        'ERR_DAYMIND_BILLING',
        `${damaged.length} damaged line(s) of ${this.journal.path} (line ${damaged.map((d) => d.line).join(', ')}) moved to ${this.journal.quarantinePath}`,
      ),
    );
  }
}
