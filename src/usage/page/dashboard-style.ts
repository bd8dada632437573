/**
 * The style of the customer usage page, served as `dashboard.css`: system fonts only, light and
 * dark, one column on a phone. The chart's colours are set here by class, not in the SVG.
 */
export const DASHBOARD_CSS = `:root {
  color-scheme: light dark;
  --bg: #f6f7f9;
  --panel: #ffffff;
  --text: #1b1f24;
  --muted: #5b6470;
  --line: #dde1e6;
  --accent: #2456c7;
  --on-accent: #ffffff;
  --allowed: #2f6fde;
  --limited: #d9482b;
  --limited-text: #b93a20;
  --today: rgba(47, 111, 222, 0.08);
  --alert-bg: #fdecea;
  --alert-text: #8a1c0c;
  --warn-bg: #fff6db;
  --warn-text: #6b4d00;
  --radius: 10px;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418;
    --panel: #1a1f25;
    --text: #e6e9ed;
    --muted: #9aa4b0;
    --line: #2c333b;
    --accent: #7aa2ff;
    --on-accent: #111418;
    --allowed: #5b8ff0;
    --limited: #ff7a5c;
    --limited-text: #ff7a5c;
    --today: rgba(91, 143, 240, 0.12);
    --alert-bg: #3a1712;
    --alert-text: #ffc7bb;
    --warn-bg: #352b0c;
    --warn-text: #ffe3a0;
  }
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  overflow-wrap: anywhere;
}
.top, main { max-width: 64rem; margin: 0 auto; padding: 0 1rem; }
.top { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: 0.25rem 1rem; padding-top: 1.25rem; }
h1 { font-size: 1.5rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 0 0 0.5rem; }
h3 { font-size: 0.85rem; font-weight: 600; color: var(--muted); margin: 0; text-transform: uppercase; letter-spacing: 0.04em; }
.who { margin: 0; color: var(--muted); display: flex; flex-wrap: wrap; gap: 0.25rem 0.75rem; }
.who .owner { color: var(--text); font-weight: 600; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.95em; }
.panel, .card { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius); }
.panel { padding: 1rem; margin: 1rem 0; }
label { display: block; font-weight: 600; margin-bottom: 0.35rem; }
.key-row { display: flex; gap: 0.5rem; flex-wrap: wrap; }
input[type="password"] {
  flex: 1 1 14rem;
  min-width: 0;
  font: inherit;
  padding: 0.55rem 0.7rem;
  border: 1px solid var(--line);
  border-radius: 8px;
  background: var(--bg);
  color: var(--text);
}
button {
  font: inherit;
  font-weight: 600;
  padding: 0.55rem 1rem;
  border-radius: 8px;
  border: 1px solid var(--accent);
  background: var(--accent);
  color: var(--on-accent);
  cursor: pointer;
}
button.secondary { background: transparent; color: var(--accent); }
button:disabled { opacity: 0.6; cursor: progress; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.help { color: var(--muted); font-size: 0.875rem; margin: 0.5rem 0 0; }
.key-actions { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 0.5rem 1rem; }
.key-actions p { margin: 0; }
.buttons { display: flex; gap: 0.5rem; flex-wrap: wrap; }
.alert { background: var(--alert-bg); color: var(--alert-text); border-radius: var(--radius); padding: 0.75rem 1rem; margin: 1rem 0; font-weight: 600; }
.alert:empty { display: none; }
.status { color: var(--muted); font-size: 0.875rem; margin: 0.25rem 0; min-height: 1.3em; }
.warning { background: var(--warn-bg); color: var(--warn-text); border-radius: var(--radius); padding: 0.75rem 1rem; margin: 1rem 0 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(13rem, 1fr)); gap: 0.75rem; margin-top: 0.75rem; }
.card { padding: 0.85rem 1rem; min-width: 0; }
.card .big { font-size: 1.6rem; font-weight: 700; margin: 0.2rem 0 0; line-height: 1.25; font-variant-numeric: tabular-nums; }
.card .big .of { font-size: 1rem; font-weight: 400; color: var(--muted); }
.card .sub { color: var(--muted); font-size: 0.875rem; margin: 0.25rem 0 0; }
meter { display: block; width: 100%; height: 0.6rem; margin-top: 0.5rem; }
.chart-panel h3 { margin-bottom: 0.5rem; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 0.25rem 1.25rem; padding: 0; margin: 0 0 0.5rem; font-size: 0.9rem; }
.legend strong { font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; border-radius: 2px; margin-right: 0.4rem; vertical-align: -0.05rem; }
.swatch.allowed { background: var(--allowed); }
.swatch.limited { background: var(--limited); }
.chart { width: 100%; padding: 0; }
.chart svg { display: block; max-width: 100%; height: auto; }
.chart text { fill: var(--muted); font-size: 11px; font-family: inherit; }
.chart .grid line { stroke: var(--line); stroke-width: 1; }
.chart .baseline { stroke: var(--muted); stroke-width: 1; }
.chart .hit { fill: transparent; }
.chart .day:hover .hit { fill: var(--today); }
.chart .day.today .hit { fill: var(--today); }
.chart .bar.allowed { fill: var(--allowed); }
.chart .bar.limited { fill: var(--limited); }
.chart .empty { font-size: 13px; }
details { margin-top: 0.75rem; }
summary { cursor: pointer; color: var(--accent); font-weight: 600; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin-top: 0.5rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: 0.875rem; padding-bottom: 0.35rem; }
th, td { padding: 0.35rem 0.5rem; border-bottom: 1px solid var(--line); text-align: right; overflow-wrap: normal; }
th[scope="row"], thead th:first-child { text-align: left; font-weight: 400; }
thead th { font-size: 0.85rem; color: var(--muted); }
tr.today th, tr.today td { font-weight: 700; }
td.limited { color: var(--limited-text); }
.visually-hidden { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
@media (max-width: 30rem) {
  .top, main { padding: 0 0.75rem; }
  .top { padding-top: 1rem; }
  .panel { padding: 0.85rem; }
  .cards { grid-template-columns: 1fr 1fr; gap: 0.5rem; }
  .cards.limits { grid-template-columns: 1fr; }
  .card { padding: 0.7rem 0.75rem; }
  .card .big { font-size: 1.3rem; }
  .key-row button { flex: 1 1 auto; }
}
`;
