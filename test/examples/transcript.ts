/**
 * One sequence of requests as a server answered it: status, the headers daymind-auth sets and the
 * JSON body, with what depends on the moment (seconds to a reset, `last_used`, the wait in a 429's
 * message) checked for shape and replaced by a placeholder, so that two servers' transcripts can
 * be compared whole.
 */

export interface Step {
  method?: string;
  path: string;
  headers?: Record<string, string>;
}

export interface Answer {
  status: number;
  headers: Record<string, string | null>;
  body: unknown;
}

/** The headers daymind-auth sets, and the content type of the answer. */
export const HEADERS = ['content-type', 'cache-control', 'www-authenticate', 'retry-after', 'ratelimit-policy', 'ratelimit'] as const;

export async function call(base: string, step: Step): Promise<Answer> {
  const res = await fetch(base + step.path, { method: step.method ?? 'GET', headers: step.headers });
  const text = await res.text();
  const headers: Record<string, string | null> = {};
  for (const name of HEADERS) headers[name] = res.headers.get(name);
  normalizeRateLimit(headers);
  if (headers['retry-after'] !== null) {
    if (!/^[1-9]\d*$/.test(headers['retry-after']!)) throw new Error(`Retry-After is not whole seconds: ${headers['retry-after']}`);
    headers['retry-after'] = '<seconds>';
  }
  return { status: res.status, headers, body: text === '' ? null : normalizeBody(JSON.parse(text)) };
}

export async function transcript(base: string, steps: readonly Step[]): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const step of steps) answers.push(await call(base, step));
  return answers;
}

/** `RateLimit`'s `t` of each policy, checked to be from 0 to the policy's window `w`, becomes `*`. */
function normalizeRateLimit(headers: Record<string, string | null>): void {
  const policy = headers['ratelimit-policy'];
  const state = headers['ratelimit'];
  if (policy === null || state === null) return;
  const windows = new Map([...policy.matchAll(/"([^"]+)";q=\d+;w=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  headers['ratelimit'] = state.replace(/"([^"]+)";r=(\d+);t=(\d+)/g, (text, name: string, r: string, t: string) => {
    const w = windows.get(name);
    if (w === undefined || Number(t) > w) throw new Error(`RateLimit ${text} does not fit RateLimit-Policy ${policy}`);
    return `"${name}";r=${r};t=*`;
  });
}

function normalizeBody(value: unknown, key?: string): unknown {
  if (Array.isArray(value)) return value.map((v) => normalizeBody(v));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalizeBody(v, k)]));
  }
  if (key === 'reset_seconds' && Number.isInteger(value) && (value as number) >= 0) return '<seconds>';
  if (key === 'last_used' && typeof value === 'number') return '<time>';
  if (key === 'message' && typeof value === 'string') return value.replace(/retry in [^.]+\.$/, 'retry in <wait>.');
  return value;
}
