import { statSync } from 'node:fs';
import { clearInterval, setInterval } from 'node:timers';
import { ConfigError, describeError } from '../errors';
import { readPlansFile, type Plan } from './plans';

/**
 * Keeps `plans` equal to the plans file while it changes, as keys follow their store: the file is
 * checked every `intervalMs` and read again when its size or modification time changed. A file
 * that cannot be read or checked is reported once per version, naming it, and the plans in force
 * stay as they were. A plan whose definition did not change keeps its object (and so its
 * rate-limit windows and their counts); a changed or new one applies from the next request.
 */
export class PlansFileWatcher {
  private version: string;
  private reported = '';
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly path: string,
    private readonly plans: Map<string, Plan>,
    intervalMs: number,
    private readonly onError: (err: Error) => void,
  ) {
    this.version = this.stamp();
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  /** Reads the file again if it changed since the last check. */
  check(): void {
    const version = this.stamp();
    if (version === this.version) return;
    let fresh: Map<string, Plan>;
    try {
      fresh = readPlansFile(this.path);
    } catch (err) {
      if (this.reported !== version) {
        this.reported = version;
        const reason = err instanceof ConfigError ? err.message : describeError(err);
        this.onError(
          new ConfigError('DAYMIND_PLANS_FILE', `${reason.replace(/^DAYMIND_PLANS_FILE: /, '')}; the plans in force stay as they were`),
        );
      }
      return;
    }
    this.version = version;
    const before = new Map(this.plans);
    this.plans.clear();
    for (const [name, plan] of fresh) {
      const old = before.get(name);
      this.plans.set(name, old && sameDefinition(old, plan) ? old : plan);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The file's version as stat sees it; '' when it cannot be stat'ed (reported when read). */
  private stamp(): string {
    try {
      const s = statSync(this.path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }
}

function sameDefinition(a: Plan, b: Plan): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
