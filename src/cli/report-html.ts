import type { Report, ReportDay, ReportFigures, ReportOwner } from './report-data';

/*
 * The report as one self-contained HTML file: it is mailed and archived, so it must open offline
 * from an attachment. Inline CSS and inline SVG only, no script, no URL of any kind; the Content
 * Security Policy below makes a mistake here fail closed rather than reach the network.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const num = (n: number | null): string => (n === null ? '–' : n.toLocaleString('en-US'));

/** A share to one decimal, as HTML; a share above nothing never shows as 0.0%. */
function percent(part: number, whole: number): string {
  const value = (part / whole) * 100;
  return value > 0 && value < 0.05 ? '&lt;0.1%' : `${value.toFixed(1)}%`;
}

/** An owner's name as text, isolated from the text around it (a name may be right-to-left). */
const ownerText = (owner: string): string => (owner === '' ? '<i>(no owner recorded)</i>' : `<bdi>${escapeHtml(owner)}</bdi>`);

export function monthTitle(month: string): string {
  const [year, mon] = month.split('-').map(Number) as [number, number];
  return new Date(Date.UTC(year, mon - 1, 1)).toLocaleString('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });
}

const STYLE = `
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--alt:#f6f8fa;--units:#1f6feb;--limited:#cf222e}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:#fff}
header,main,footer{max-width:64rem;margin:0 auto;padding:0 1rem}
h1{font-size:1.5rem;margin:1.5rem 0 .25rem}
h2{font-size:1.2rem;margin:2rem 0 .5rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1.5rem 0 .25rem;overflow-wrap:anywhere}
p{margin:.25rem 0 .75rem}
.meta,caption,figcaption,footer{color:var(--muted);font-size:.875rem}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5rem,1fr));gap:.5rem;margin:0}
.kpis div{border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem}
.kpis dt{color:var(--muted);font-size:.8rem}
.kpis dd{margin:0;font-size:1.3rem;font-weight:600;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
caption{text-align:left;padding:.25rem 0}
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td.text,th.text{text-align:left}
th[scope=row]{font-weight:normal;white-space:normal;overflow-wrap:anywhere;min-width:7rem}
thead th{font-size:.8rem;color:var(--muted);border-bottom:2px solid var(--line);vertical-align:bottom}
tbody tr:nth-child(even){background:var(--alt)}
tfoot th,tfoot td{font-weight:600;border-top:2px solid var(--line)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
.owner{break-inside:avoid}
.panes{display:grid;gap:.5rem 1.5rem;grid-template-columns:minmax(0,1fr)}
@media (min-width:52rem){.panes{grid-template-columns:minmax(0,3fr) minmax(0,2fr)}}
figure{margin:0}
svg.chart{display:block;width:100%;height:auto}
.chart .u{fill:var(--units)}.chart .r{fill:var(--limited)}.chart .f{fill:var(--alt)}
.chart line{stroke:var(--line);stroke-width:1}.chart text{fill:var(--muted);font-size:13px}
.days-box{max-height:17rem;overflow:auto}
.days th,.days td{padding:.15rem .5rem}
.days thead th{position:sticky;top:0;background:#fff}
.key{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 .8em;vertical-align:-.05em}
.key.u{background:var(--units);margin-left:0}.key.r{background:var(--limited)}.key.f{background:var(--alt);border:1px solid var(--line)}
@media (max-width:40rem){body{font-size:14px}th,td{padding:.25rem .35rem}}
@media print{body{font-size:10pt}header,main,footer{max-width:none}.scroll,.days-box{overflow:visible;max-height:none}
.panes{grid-template-columns:minmax(0,3fr) minmax(0,2fr)}th,td{white-space:normal}h2,h3{break-after:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
`;

const W = 520;
const H = 180;
const LEFT = 54;
const RIGHT = 6;
const TOP = 10;
const BOTTOM = 26;

/** The smallest of 1, 2, 5 x 10^k that is at least `n`. */
function niceMax(n: number): number {
  const power = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= n)!;
}

const f1 = (n: number): string => String(Math.round(n * 10) / 10);

/** Bars per day of the month: units, and rate-limited requests beside them when there are any. */
function chart(owner: ReportOwner, id: string, title: string, desc: string, today: string): string {
  const days = owner.days;
  const limited = days.some((d) => (d.rate_limited ?? 0) > 0);
  const max = niceMax(Math.max(1, ...days.map((d) => Math.max(d.units, d.rate_limited ?? 0))));
  const plotW = W - LEFT - RIGHT;
  const plotH = H - TOP - BOTTOM;
  const band = plotW / days.length;
  const y = (v: number): number => TOP + plotH - (v / max) * plotH;
  const bar = (cls: string, x: number, width: number, value: number, label: string): string => {
    if (value <= 0) return '';
    const height = Math.max(1, (value / max) * plotH);
    return `<rect class="${cls}" x="${f1(x)}" y="${f1(TOP + plotH - height)}" width="${f1(width)}" height="${f1(height)}"><title>${label}</title></rect>`;
  };
  const parts: string[] = [];
  const future = days.findIndex((d) => d.day > today);
  if (future >= 0)
    parts.push(
      `<rect class="f" x="${f1(LEFT + future * band)}" y="${TOP}" width="${f1((days.length - future) * band)}" height="${plotH}"/>`,
    );
  const ticks = max >= 2 ? [0, max / 2, max] : [0, max];
  for (const t of ticks) {
    parts.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${f1(y(t))}" y2="${f1(y(t))}"/>`);
    parts.push(`<text x="${LEFT - 6}" y="${f1(y(t) + 4)}" text-anchor="end">${num(t)}</text>`);
  }
  days.forEach((d, i) => {
    const x = LEFT + i * band;
    const unitsWidth = band * (limited ? 0.45 : 0.7);
    parts.push(bar('u', x + band * 0.15, unitsWidth, d.units, `${d.day}: ${num(d.units)} units`));
    if (limited) parts.push(bar('r', x + band * 0.6, band * 0.25, d.rate_limited ?? 0, `${d.day}: ${num(d.rate_limited)} rate-limited`));
    const last = days.length - 1;
    if (i % 7 === 0 || (i === last && last % 7 >= 3))
      parts.push(`<text x="${f1(x + band / 2)}" y="${H - 8}" text-anchor="middle">${Number(d.day.slice(8))}</text>`);
  });
  return (
    `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id}-t ${id}-d">` +
    `<title id="${id}-t">${title}</title><desc id="${id}-d">${desc}</desc>${parts.join('')}</svg>`
  );
}

/**
 * The attributes of a box that may scroll (a wide table on a phone, a long list of days): a
 * keyboard can focus it to scroll it, and it is named by the elements of `labelledBy` (ids).
 */
const scrollable = (labelledBy: string): string => `role="region" aria-labelledby="${labelledBy}" tabindex="0"`;

/** The owner's days; its box is named by the owner's heading (`headingId`) and its caption. */
function dayTable(owner: ReportOwner, headingId: string, id: string): string {
  const active = owner.days.filter((d) => d.units > 0 || (d.rate_limited ?? 0) > 0);
  const row = (d: ReportDay) =>
    `<tr><th scope="row">${d.day}</th><td data-field="units">${num(d.units)}</td><td data-field="rate_limited">${num(d.rate_limited)}</td></tr>`;
  return (
    `<div class="days-box" ${scrollable(`${headingId} ${id}-c`)}><table class="days"><caption id="${id}-c">Days with units or rate-limited requests (the other days had none).</caption>` +
    `<thead><tr><th scope="col">Day (UTC)</th><th scope="col">Units</th><th scope="col">Rate-limited</th></tr></thead>` +
    `<tbody>${active.map(row).join('')}</tbody></table></div>`
  );
}

function ownerSection(owner: ReportOwner, index: number, report: Report, today: string): string {
  const title = monthTitle(report.month);
  const head = `<article class="owner" data-owner="${escapeHtml(owner.owner)}"><h3 id="owner-${index}">${ownerText(owner.owner)}</h3>`;
  if (owner.units === 0 && !owner.rate_limited) return `${head}<p>No units and no rate-limited requests in ${title}.</p></article>`;
  const chartTitle = `Units per day of ${escapeHtml(owner.owner || '(no owner recorded)')}, ${title}`;
  const busiest = owner.days.reduce((a, b) => (b.units > a.units ? b : a));
  const share = report.totals.units > 0 ? ` (${percent(owner.units, report.totals.units)} of all)` : '';
  const summary =
    `${num(owner.units)} units${share}` +
    (owner.units > 0 ? `, the most on ${busiest.day}: ${num(busiest.units)}` : '') +
    (owner.rate_limited !== null ? `; ${num(owner.rate_limited)} requests rate-limited` : '');
  const legend =
    `<span class="key u"></span>units` +
    (owner.days.some((d) => (d.rate_limited ?? 0) > 0) ? `<span class="key r"></span>rate-limited requests` : '') +
    (owner.days.some((d) => d.day > today) ? `<span class="key f"></span>days still to come` : '');
  return (
    `${head}<p class="meta">${summary}</p><div class="panes"><figure>${chart(owner, `chart-${index}`, chartTitle, summary, today)}<figcaption>${legend}</figcaption></figure>` +
    `${dayTable(owner, `owner-${index}`, `days-${index}`)}</div></article>`
  );
}

function ownersTable(report: Report): string {
  const { totals } = report;
  const share = (units: number) => (totals.units === 0 ? '–' : percent(units, totals.units));
  const cells = (o: ReportFigures) =>
    `<td data-field="keys">${num(o.keys)}</td><td data-field="keys_with_usage">${num(o.keys_with_usage)}</td>` +
    `<td data-field="units">${num(o.units)}</td><td data-field="share">${share(o.units)}</td>` +
    `<td data-field="rate_limited">${num(o.rate_limited)}</td><td data-field="usage_count">${num(o.usage_count)}</td>` +
    `<td data-field="requests_today">${num(o.requests_today)}</td>`;
  const rows = report.owners.map(
    (o) => `<tr data-owner="${escapeHtml(o.owner)}"><th scope="row">${ownerText(o.owner)}</th>${cells(o)}</tr>`,
  );
  return (
    `<div class="scroll" ${scrollable('owners-caption')}><table id="owners-table"><caption id="owners-caption">Per owner, by units in ${monthTitle(report.month)}.</caption>` +
    `<thead><tr><th scope="col">Owner</th><th scope="col">Keys</th><th scope="col">Keys used</th><th scope="col">Units (month)</th>` +
    `<th scope="col">Share</th><th scope="col">Rate-limited (month)</th><th scope="col">All-time usage</th><th scope="col">Today (UTC)</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody>` +
    `<tfoot><tr data-total=""><th scope="row">Total</th>${cells(totals)}</tr></tfoot></table></div>`
  );
}

function keysTable(report: Report): string {
  if (report.top_keys.length === 0) return `<p>No key has units in ${monthTitle(report.month)}.</p>`;
  const rows = report.top_keys.map(
    (k, i) =>
      `<tr data-key="${escapeHtml(k.key_hash)}"><td>${i + 1}</td><td class="text"><code>${escapeHtml(k.key_prefix || k.key_hash.slice(0, 12))}</code></td>` +
      `<td class="text">${ownerText(k.owner)}</td><td class="text">${k.status}</td><td data-field="units">${num(k.units)}</td>` +
      `<td data-field="rate_limited">${num(k.rate_limited)}</td><td data-field="usage_count">${num(k.usage_count)}</td>` +
      `<td data-field="requests_today">${num(k.requests_today)}</td></tr>`,
  );
  return (
    `<div class="scroll" ${scrollable('keys-caption')}><table id="keys-table"><caption id="keys-caption">The ${report.top_keys.length === 1 ? 'key' : `${report.top_keys.length} keys`} with the most units in ${monthTitle(report.month)}.</caption>` +
    `<thead><tr><th scope="col">#</th><th scope="col" class="text">Key</th><th scope="col" class="text">Owner</th><th scope="col" class="text">Status</th>` +
    `<th scope="col">Units (month)</th><th scope="col">Rate-limited (month)</th><th scope="col">All-time usage</th><th scope="col">Today (UTC)</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></div>`
  );
}

/** The report as a self-contained HTML page. */
export function renderHtml(report: Report): string {
  const title = monthTitle(report.month);
  const generated = report.generated_at.slice(0, 16).replace('T', ' ');
  const today = report.generated_at.slice(0, 10);
  const { totals, history } = report;
  const kpi = (label: string, value: string, field: string) => `<div><dt>${label}</dt><dd data-field="${field}">${value}</dd></div>`;
  const historyNote = history
    ? `Rate-limited requests (answered 429) come from the per-day usage history, for ${history.from} to ${history.to}` +
      (history.missing.length > 0 ? `, except ${history.missing.join(', ')}, which could not be read` : '') +
      '.'
    : 'Rate-limited requests are not shown (–): the key store has no per-day usage history for this month.';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="daymind-keys report">
<title>API usage, ${title}${report.owner !== null ? ` – ${escapeHtml(report.owner)}` : ''}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>API usage, ${title}</h1>
<p class="meta">Month ${report.month} (UTC)${report.owner !== null ? ` · owner ${ownerText(report.owner)} only` : ''} · generated ${generated} UTC</p>
</header>
<main>
<section aria-labelledby="summary"><h2 id="summary">Summary</h2>
<dl class="kpis">
${kpi('Units (month)', num(totals.units), 'units')}
${kpi('Owners', num(totals.owners), 'owners')}
${kpi('Keys used', `${num(totals.keys_with_usage)} <small>of ${num(totals.keys)}</small>`, 'keys_with_usage')}
${kpi('Rate-limited', num(totals.rate_limited), 'rate_limited')}
${kpi('All-time usage', num(totals.usage_count), 'usage_count')}
${kpi('Today (UTC)', num(totals.requests_today), 'requests_today')}
</dl>
</section>
<section aria-labelledby="owners"><h2 id="owners">Owners</h2>
${ownersTable(report)}
</section>
<section aria-labelledby="top-keys"><h2 id="top-keys">Top keys</h2>
${keysTable(report)}
</section>
<section aria-labelledby="daily"><h2 id="daily">Units per day</h2>
${report.owners.map((o, i) => ownerSection(o, i, report, today)).join('\n')}
</section>
</main>
<footer>
<h2>About these figures</h2>
<p>Units in the month come from the usage ledger, per UTC day of each report's last flush; per owner they equal <code>daymind-keys export --month ${report.month}</code>. All-time usage and today are the key store's counters when the report was made, as <code>daymind-keys usage</code> shows them. ${historyNote} Usage a running server counted in its current billing window (a minute by default) before ${generated} UTC, or still waiting for the billing provider, is not included yet (<code>daymind-keys billing</code> shows it).</p>
</footer>
</body>
</html>
`;
}
