import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { createHash } from 'node:crypto';

/**
 * Where a process id means something: 12 hex digits naming this machine, boot and pid namespace
 * (on Linux the kernel's boot id and the pid namespace; elsewhere the host name). Temporary files
 * and locks carry it beside the writer's pid, so that a process only judges the pids of its own
 * machine: another container on the same host has pids of its own, and a pid from before a reboot
 * is nobody's.
 */
export const MACHINE = machineTag();

function machineTag(): string {
  let where: string;
  try {
    where = `linux ${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()} ${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    where = `${process.platform} ${hostname()}`;
  }
  return createHash('sha256').update(where).digest('hex').slice(0, 12);
}

/** Whether `value` is a pid: a positive integer (kill() takes 0 and negative numbers as process groups). */
export function isPid(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/**
 * Whether process `pid` of this machine still runs. A process that exited but was not yet reaped
 * (a zombie) no longer runs: it writes nothing and holds nothing. A pid given to a new process
 * since counts as running, which only makes the caller wait for other signs (a lock's age).
 */
export function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (name) S ...": the name may hold spaces and parentheses, the state follows the last ")".
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z';
  } catch {
    return false;
  }
}
