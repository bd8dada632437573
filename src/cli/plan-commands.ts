import { creditsAt } from '../store/record';
import type { KeyChanges } from '../store/types';
import { print, updateKey, viewOf, type CommandContext, type CommandOptions } from './commands';
import { UsageError } from './errors';
import { creditsCell, parseCredits, parseRefill, plansView } from './plans';

/** `plans`: the plans in force, from DAYMIND_PLANS_FILE. */
export function plans(ctx: CommandContext): void {
  ctx.out(plansView(ctx.plans.require(), ctx.json));
}

/**
 * `credits KEY --add N | --set N [--refill monthly:N|daily:N|none]`: changes a key's prepaid
 * credits in one write (an add is atomic in the store, and never takes the balance below 0).
 */
export async function credits(ctx: CommandContext, name: string, options: CommandOptions): Promise<void> {
  if (options.add !== undefined && options.set !== undefined) throw new UsageError('credits takes --add or --set, not both');
  if (options.add === undefined && options.set === undefined && options.refill === undefined)
    throw new UsageError('credits needs --add N, --set N or --refill monthly:N|daily:N|none');
  const changes: KeyChanges = {};
  if (options.add !== undefined) changes.add_credits = parseCredits(options.add, '--add', true);
  if (options.set !== undefined) changes.credits = parseCredits(options.set, '--set');
  if (options.refill !== undefined) changes.credits_refill = parseRefill(options.refill, true);
  const record = await updateKey(ctx, name, (target) => {
    const refill = changes.credits_refill;
    // A refill given to a key that is not prepaid yet starts it at the refill amount, as create does.
    if (refill && !('credits' in changes) && changes.add_credits === undefined && creditsAt(target, ctx.now) === undefined) {
      return { ...changes, credits: refill.amount };
    }
    return changes;
  });
  if (ctx.json) return print(ctx, viewOf(ctx, record));
  ctx.out(`Credits of ${record.key_prefix} (${record.owner}): ${creditsCell(record, ctx.now)}\n`);
}
