import type { LedgerEntry } from './ledger';

/** Usage of one owner in one month. */
export interface OwnerTotal {
  month: string;
  owner: string;
  quantity: number;
  keys: number;
}

/** A unit price as an exact decimal: `0.001 USD`. */
export interface Price {
  text: string;
  currency: string;
  /** The price times 10^scale, as an integer. */
  scaled: bigint;
  scale: number;
}

export function parsePrice(amount: string, currency: string): Price | undefined {
  if (!/^\d{1,12}(\.\d{1,12})?$/.test(amount) || !/^[A-Z][A-Z0-9'._-]{0,22}[A-Z0-9]$/.test(currency)) return undefined;
  const [whole, fraction = ''] = amount.split('.') as [string, string?];
  return { text: amount, currency, scaled: BigInt(whole + fraction), scale: fraction.length };
}

/** quantity x price, exactly, as a decimal string. */
export function amountOf(quantity: number, price: Price): string {
  const total = BigInt(quantity) * price.scaled;
  if (price.scale === 0) return total.toString();
  const digits = total.toString().padStart(price.scale + 1, '0');
  return `${digits.slice(0, -price.scale)}.${digits.slice(-price.scale)}`;
}

/** Totals per month and owner, in month then owner order. */
export function totalsByOwner(entries: LedgerEntry[]): OwnerTotal[] {
  const totals = new Map<string, OwnerTotal & { keySet: Set<string> }>();
  for (const e of entries) {
    const month = new Date(e.window_end * 1000).toISOString().slice(0, 7);
    const id = `${month}\u0000${e.owner}`;
    let t = totals.get(id);
    if (!t) {
      t = { month, owner: e.owner, quantity: 0, keys: 0, keySet: new Set() };
      totals.set(id, t);
    }
    t.quantity += e.quantity;
    t.keySet.add(e.key_hash);
  }
  return [...totals.values()]
    .map(({ keySet, ...t }) => ({ ...t, keys: keySet.size }))
    .sort((a, b) => a.month.localeCompare(b.month) || a.owner.localeCompare(b.owner));
}

function csvCell(value: string | number): string {
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(totals: OwnerTotal[], price?: Price): string {
  const header = ['month', 'owner', 'keys', 'quantity', ...(price ? ['unit_price', 'amount', 'currency'] : [])];
  const rows = totals.map((t) => [
    t.month,
    t.owner,
    t.keys,
    t.quantity,
    ...(price ? [price.text, amountOf(t.quantity, price), price.currency] : []),
  ]);
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

export function toJson(totals: OwnerTotal[], price?: Price): unknown[] {
  return totals.map((t) => (price ? { ...t, unit_price: price.text, amount: amountOf(t.quantity, price), currency: price.currency } : t));
}

/** A Beancount account name component for an owner: letters, digits and dashes, starting with a capital. */
export function accountComponent(owner: string): string {
  const cleaned = owner
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  if (cleaned === '') return 'Unknown';
  const first = cleaned[0]!.toUpperCase();
  return /[A-Z]/.test(first) ? first + cleaned.slice(1) : `X-${cleaned}`;
}

function lastDayOf(month: string): string {
  const [y, m] = month.split('-').map(Number) as [number, number];
  return new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
}

/**
 * A Beancount ledger: one transaction per owner and month, receivable against usage income. The
 * accounts open on the first month's first day (the month of `nowMs` when there is no usage).
 */
export function toBeancount(totals: OwnerTotal[], price: Price, nowMs: number): string {
  const lines = [
    '; API usage exported by daymind-keys',
    `option "title" "API usage"`,
    `option "operating_currency" "${price.currency}"`,
    '',
  ];
  const opened = new Set<string>();
  const first = totals[0]?.month ?? new Date(nowMs).toISOString().slice(0, 7);
  const openDate = `${first}-01`;
  const open = (account: string) => {
    if (opened.has(account)) return;
    opened.add(account);
    lines.push(`${openDate} open ${account} ${price.currency}`);
  };
  open('Income:Api-Usage');
  for (const t of totals) open(`Assets:Receivable:${accountComponent(t.owner)}`);
  lines.push('');
  for (const t of totals) {
    const amount = amountOf(t.quantity, price);
    const narration = `API usage ${t.month}: ${t.quantity} requests at ${price.text} ${price.currency}`;
    lines.push(`${lastDayOf(t.month)} * ${JSON.stringify(t.owner)} ${JSON.stringify(narration)}`);
    lines.push(`  Assets:Receivable:${accountComponent(t.owner)}  ${amount} ${price.currency}`);
    lines.push(`  Income:Api-Usage  -${amount} ${price.currency}`);
    lines.push('');
  }
  return lines.join('\n');
}
