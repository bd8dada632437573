/* Durations as people read them, for the `message` of refusals (the machine fields keep seconds). */

const UNITS: ReadonlyArray<[seconds: number, one: string, short: string]> = [
  [86_400, 'day', 'd'],
  [3_600, 'hour', 'h'],
  [60, 'minute', 'min'],
  [1, 'second', 's'],
];

/**
 * A window's length after "per": `second`, `minute`, `hour`, `day` for one of a unit, else a count
 * of the largest unit that divides it (`15 minutes`, `2 days`, `90 seconds`).
 */
export function perWindow(seconds: number): string {
  for (const [size, one] of UNITS) {
    if (seconds % size !== 0) continue;
    const count = seconds / size;
    return count === 1 ? one : `${count} ${one}s`;
  }
  return `${seconds} seconds`;
}

/**
 * A wait, in its two largest units, rounded down (`1 s`, `4 min 10 s`, `23 h 59 min`, `2 d 3 h`):
 * near enough to plan by, with the exact seconds in `Retry-After`.
 */
export function waitText(seconds: number): string {
  const parts: string[] = [];
  let left = Math.max(0, Math.floor(seconds));
  for (const [size, , short] of UNITS) {
    if (parts.length === 2) break;
    const count = Math.floor(left / size);
    left -= count * size;
    if (count > 0 || (parts.length === 0 && size === 1)) parts.push(`${count} ${short}`);
    else if (parts.length === 1) break;
  }
  return parts.join(' ');
}
