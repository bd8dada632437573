/**
 * The HTML of the customer usage page. Static: everything from the server is filled in by
 * dashboard.js with textContent and DOM calls. No inline script or style (the CSP forbids them);
 * the script and style are siblings, so relative URLs find them wherever the router is mounted.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>API usage</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="dashboard.css">
<script src="dashboard.js" defer></script>
</head>
<body>
<header class="top">
  <h1>API usage</h1>
  <p class="who" id="who" data-testid="who" hidden>
    <span class="owner" data-field="owner"></span>
    <span class="prefix">key <code data-field="key_prefix"></code></span>
  </p>
</header>
<main>
  <section class="panel key-panel" aria-labelledby="key-heading">
    <h2 id="key-heading">Your API key</h2>
    <form id="key-form" data-testid="key-form" novalidate>
      <label for="key-input">Paste your API key</label>
      <div class="key-row">
        <input id="key-input" data-testid="key-input" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required aria-describedby="key-help">
        <button type="submit" id="key-submit" data-testid="key-submit">Show usage</button>
      </div>
      <p id="key-help" class="help">The key stays in this browser tab only (session storage, cleared when the tab closes). It is sent only to this server, in the Authorization header, never in a URL or a cookie. Each time this page loads its numbers, it makes two requests with your key; they are not usage and take nothing from its limits.</p>
    </form>
    <div id="key-actions" class="key-actions" data-testid="key-actions" hidden>
      <p>Showing the usage of the key in this tab.</p>
      <div class="buttons">
        <button type="button" id="refresh" data-testid="refresh">Refresh</button>
        <button type="button" id="forget" data-testid="forget" class="secondary">Forget key</button>
      </div>
    </div>
  </section>
  <div id="alert" class="alert" role="alert" data-testid="error"></div>
  <p id="status" class="status" role="status" data-testid="status"></p>
  <section id="usage" data-testid="usage" aria-labelledby="usage-heading" hidden>
    <h2 id="usage-heading" class="visually-hidden">Usage of this key</h2>
    <div class="cards">
      <div class="card">
        <h3>Requests today</h3>
        <p class="big" data-field="requests_today"></p>
        <p class="sub">UTC day <span data-field="requests_day"></span></p>
      </div>
      <div class="card">
        <h3>All time</h3>
        <p class="big" data-field="usage_count"></p>
        <p class="sub">since <span data-field="created_at"></span></p>
      </div>
      <div class="card">
        <h3>Last used</h3>
        <p class="big" data-field="last_used_ago"></p>
        <p class="sub" data-field="last_used"></p>
      </div>
      <div class="card" id="expiry-card">
        <h3>Expires</h3>
        <p class="big" data-field="expires_in"></p>
        <p class="sub" data-field="expires_at"></p>
        <p class="sub" id="revoke-at-line" hidden>Revoked from <span data-field="revoke_at"></span></p>
      </div>
    </div>
    <div id="limits" class="cards limits" data-testid="limits"></div>
    <p id="limited-note" class="warning" data-testid="limited-note" hidden></p>
    <p id="revoke-warning" class="warning" data-testid="revoke-warning" hidden></p>
    <p id="usage-banner" class="warning" data-testid="usage-banner" hidden></p>
    <section class="panel chart-panel" aria-labelledby="chart-heading">
      <h3 id="chart-heading">Last 30 days</h3>
      <ul class="legend" id="legend" data-testid="legend">
        <li><span class="swatch allowed" aria-hidden="true"></span>Allowed <strong data-field="total_allowed"></strong></li>
        <li><span class="swatch limited" aria-hidden="true"></span>Refused by a rate limit (429) <strong data-field="total_rate_limited"></strong></li>
      </ul>
      <p id="history-note" class="help" data-testid="history-note" hidden></p>
      <div id="chart" class="chart" data-testid="chart"></div>
      <details id="table-details">
        <summary>The same numbers as a table</summary>
        <div class="table-wrap">
          <table id="history-table" data-testid="history-table">
            <caption>Requests per UTC day, last 30 days, newest first</caption>
            <thead><tr><th scope="col">Day</th><th scope="col">Allowed</th><th scope="col">Rate-limited</th></tr></thead>
            <tbody id="history-rows"></tbody>
          </table>
        </div>
      </details>
    </section>
  </section>
  <noscript><p class="alert">This page needs JavaScript to load your usage.</p></noscript>
</main>
</body>
</html>
`;
