/**
 * The script of the customer usage page: plain browser JavaScript (ES2020), served as
 * `dashboard.js` beside the page. Rules it keeps:
 * - the key lives in sessionStorage (and a variable) only, goes out only as `Authorization: Bearer`,
 *   never in a URL, a cookie or the console;
 * - data calls use URLs relative to the page (`<mount>/usage/dashboard`), so `../usage` is
 *   `<mount>/usage` and `history?days=30` is `<mount>/usage/history?days=30` wherever it is mounted;
 * - everything from the server reaches the page through textContent or setAttribute, never as markup.
 * Written without template literals: it is itself held in one (String.raw, so backslashes stay).
 */
import { DASHBOARD_DRAW } from './dashboard-draw';

export const DASHBOARD_SCRIPT = String.raw`(() => {
  'use strict';

  const STORAGE_NAME = 'daymind-usage-key';
  const USAGE_URL = '../usage';
  const HISTORY_URL = 'history?days=30';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** What a key can be before it is sent: printable ASCII without spaces (a header value). */
  const KEY_SHAPE = /^[\x21-\x7e]{1,512}$/;

  const MESSAGES = {
    missing_api_key: 'Paste your API key first.',
    malformed_api_key: 'That is not a valid API key. Check that you copied the whole key, with nothing added.',
    invalid_api_key: 'This API key is not known. Check that you copied the whole key, or ask for a new one.',
    revoked_api_key: 'This API key has been revoked and no longer works. Ask for a new key.',
    expired_api_key: 'This API key has expired and no longer works. Ask for a new key.',
    service_unavailable: 'The service is unavailable right now. Try again in a moment.',
    network: 'The server could not be reached. Check your connection and try again.',
    local_shape: 'That does not look like an API key: it must be one word of letters, digits and signs, without spaces.',
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $('key-form'),
    input: $('key-input'),
    submit: $('key-submit'),
    keyActions: $('key-actions'),
    refresh: $('refresh'),
    forget: $('forget'),
    alert: $('alert'),
    status: $('status'),
    who: $('who'),
    usage: $('usage'),
    limits: $('limits'),
    revokeAtLine: $('revoke-at-line'),
    limitedNote: $('limited-note'),
    revokeWarning: $('revoke-warning'),
    banner: $('usage-banner'),
    historyNote: $('history-note'),
    chart: $('chart'),
    legend: $('legend'),
    tableDetails: $('table-details'),
    rows: $('history-rows'),
  };

  const count = new Intl.NumberFormat();
  const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
  const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
  const dayShort = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
  const dayLong = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric', timeZone: 'UTC' });
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  let key = null;
  let loadSeq = 0;
  let countdown = 0;
  let shownDays = null;
  let drawnWidth = 0;

  // ---- the key: sessionStorage only -------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(STORAGE_NAME);
    } catch (err) {
      return null;
    }
  }

  function keepKey(value) {
    key = value;
    try {
      sessionStorage.setItem(STORAGE_NAME, value);
    } catch (err) {
      // Storage refused (private mode, quota): the key stays in this page only.
    }
  }

  function dropKey() {
    key = null;
    try {
      sessionStorage.removeItem(STORAGE_NAME);
    } catch (err) {
      // Nothing was stored.
    }
  }

  // ---- requests -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, retryAfter, policy) {
      super(message || code);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
      this.policy = policy;
    }
  }

  async function getJson(url, apiKey) {
    let res;
    try {
      res = await fetch(url, {
        headers: { Authorization: 'Bearer ' + apiKey, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
        referrerPolicy: 'no-referrer',
      });
    } catch (err) {
      throw new ApiError(0, 'network', '');
    }
    let body = null;
    try {
      body = await res.json();
    } catch (err) {
      body = null;
    }
    if (res.ok && body && typeof body === 'object') return body;
    const error = body && typeof body.error === 'object' && body.error ? body.error : {};
    const code = typeof error.code === 'string' ? error.code : 'http_' + res.status;
    const message = typeof error.message === 'string' ? error.message : '';
    const retryAfter = Number(res.headers.get('Retry-After'));
    throw new ApiError(res.status, code, message, Number.isFinite(retryAfter) ? retryAfter : null, error.policy);
  }

  function messageFor(err) {
    if (err.code === 'rate_limited') {
      const who = err.policy === 'ip' ? 'from your network' : 'with this key';
      const wait = err.retryAfter ? ' Try again in ' + seconds(err.retryAfter) + '.' : ' Try again in a moment.';
      return 'Too many requests ' + who + ' right now.' + wait;
    }
    if (MESSAGES[err.code]) return MESSAGES[err.code];
    return 'The usage could not be loaded (' + (err.message || 'HTTP ' + err.status) + ').';
  }

  async function load() {
    const apiKey = key;
    const seq = ++loadSeq;
    setAlert('');
    setStatus('Loading…');
    ui.usage.setAttribute('aria-busy', 'true');
    ui.refresh.disabled = true;
    try {
      const usage = await getJson(USAGE_URL, apiKey);
      let history = null;
      let historyNote = '';
      try {
        history = await getJson(HISTORY_URL, apiKey);
      } catch (err) {
        if (err.status !== 501) throw err;
        historyNote = 'This server keeps no per-day history, so there is no chart.';
      }
      if (seq !== loadSeq) return;
      render(usage, history, historyNote);
      setStatus('Updated at ' + clock.format(new Date()) + '.');
    } catch (err) {
      if (seq !== loadSeq) return;
      showNothing();
      setStatus('');
      setAlert(messageFor(err));
      // A key the server refuses for good is of no more use here: ask for another.
      if (err.status === 401) {
        dropKey();
        showKeyForm(true);
      }
    } finally {
      if (seq === loadSeq) {
        ui.usage.removeAttribute('aria-busy');
        ui.refresh.disabled = false;
      }
    }
  }

  // ---- page state -----------------------------------------------------------------------------

  function setAlert(text) {
    ui.alert.textContent = text;
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function showKeyForm(show) {
    ui.form.hidden = !show;
    ui.keyActions.hidden = show;
  }

  function showNothing() {
    clearInterval(countdown);
    shownDays = null;
    ui.usage.hidden = true;
    ui.who.hidden = true;
  }

  function setField(name, value, text) {
    for (const node of document.querySelectorAll('[data-field="' + name + '"]')) {
      if (node.closest('[data-policy]')) continue;
      node.textContent = text;
      node.setAttribute('data-value', value === null || value === undefined ? '' : String(value));
    }
  }

  // ---- formatting -----------------------------------------------------------------------------

  function seconds(n) {
    if (n < 90) return n + (n === 1 ? ' second' : ' seconds');
    if (n < 90 * 60) return plural(Math.round(n / 60), 'minute');
    if (n < 36 * 3600) return plural(Math.round(n / 3600), 'hour');
    return plural(Math.round(n / 86400), 'day');
  }

  function plural(n, unit) {
    return n + ' ' + unit + (n === 1 ? '' : 's');
  }

  function when(unix) {
    return typeof unix === 'number' ? dateTime.format(new Date(unix * 1000)) : '';
  }

  function fromNow(unix) {
    const diff = unix - Date.now() / 1000;
    const abs = Math.abs(diff);
    if (abs < 45) return diff <= 0 ? 'Just now' : 'In a moment';
    const units = [
      ['minute', 60, 3600],
      ['hour', 3600, 86400],
      ['day', 86400, 86400 * 30],
      ['month', 86400 * 30, 86400 * 365],
    ];
    for (const [unit, size, below] of units) {
      if (abs < below) return capital(relative.format(Math.round(diff / size), unit));
    }
    return capital(relative.format(Math.round(diff / (86400 * 365)), 'year'));
  }

  function capital(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function isoDayOf(yyyymmdd) {
    const s = String(yyyymmdd);
    return s.length === 8 ? s.slice(0, 4) + '-' + s.slice(4, 6) + '-' + s.slice(6, 8) : s;
  }

  function utcDate(isoDay) {
    return new Date(isoDay + 'T00:00:00Z');
  }

  function windowName(windowSeconds) {
    if (windowSeconds === 60) return 'per minute';
    if (windowSeconds === 3600) return 'per hour';
    if (windowSeconds === 86400) return 'per day';
    return 'per ' + seconds(windowSeconds);
  }

  // ---- rendering ------------------------------------------------------------------------------

  function render(usage, history, historyNote) {
    setField('owner', usage.owner, String(usage.owner));
    setField('key_prefix', usage.key_prefix, String(usage.key_prefix));
    setField('requests_today', usage.requests_today, count.format(usage.requests_today));
    setField('requests_day', usage.requests_day, isoDayOf(usage.requests_day));
    setField('usage_count', usage.usage_count, count.format(usage.usage_count));
    setField('created_at', usage.created_at, typeof usage.created_at === 'number' ? dateOnly.format(new Date(usage.created_at * 1000)) : '');
    setField('last_used', usage.last_used, typeof usage.last_used === 'number' ? when(usage.last_used) : 'No request yet');
    setField('last_used_ago', usage.last_used, typeof usage.last_used === 'number' ? fromNow(usage.last_used) : 'Never');
    // A key in a rotation's grace period ends at the earlier of its expiry and its revocation.
    const ends = [usage.expires_at, usage.revoke_at].filter((t) => typeof t === 'number');
    const end = ends.length ? Math.min.apply(null, ends) : null;
    setField('expires_in', end, end === null ? 'Never' : fromNow(end));
    setField('expires_at', usage.expires_at, typeof usage.expires_at === 'number' ? when(usage.expires_at) : 'No expiry date');
    setField('revoke_at', usage.revoke_at, when(usage.revoke_at));
    ui.revokeAtLine.hidden = typeof usage.revoke_at !== 'number';
    const ending = [];
    if (typeof usage.revoke_at === 'number') ending.push('will be revoked on ' + when(usage.revoke_at) + ' (it has been replaced by a new key)');
    if (typeof usage.expires_at === 'number' && usage.expires_at - Date.now() / 1000 < 7 * 86400) ending.push('expires on ' + when(usage.expires_at));
    ui.revokeWarning.textContent = ending.length ? 'This key ' + ending.join(' and ') + '. Switch to a new key before then.' : '';
    ui.revokeWarning.hidden = ending.length === 0;
    renderLimits(Array.isArray(usage.rate_limits) ? usage.rate_limits : []);
    const limited = limitedText(usage);
    ui.limitedNote.textContent = limited;
    ui.limitedNote.hidden = !limited;
    ui.banner.textContent = bannerText(usage);
    ui.banner.hidden = !ui.banner.textContent;

    const days = history && Array.isArray(history.days) ? history.days : null;
    ui.historyNote.textContent = historyNote;
    ui.historyNote.hidden = !historyNote;
    ui.chart.hidden = ui.legend.hidden = ui.tableDetails.hidden = !days;
    shownDays = days;
    if (days) {
      let allowed = 0;
      let limited = 0;
      for (const d of days) {
        allowed += d.allowed;
        limited += d.rate_limited;
      }
      setField('total_allowed', allowed, count.format(allowed));
      setField('total_rate_limited', limited, count.format(limited));
      renderTable(days);
    }
    ui.who.hidden = false;
    ui.usage.hidden = false;
    // Drawn once visible, so that it takes the width it is given.
    if (days) renderChart(days);
  }

  // ---- drawing: limits, table, chart (dashboard-draw.ts) ---------------------------------------
${DASHBOARD_DRAW}
  // ---- events ---------------------------------------------------------------------------------

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = ui.input.value.trim();
    // The key leaves the input at once: it is not kept in the page's markup or form state.
    ui.input.value = '';
    if (!value) {
      setAlert(MESSAGES.missing_api_key);
      ui.input.focus();
      return;
    }
    if (!KEY_SHAPE.test(value)) {
      setAlert(MESSAGES.local_shape);
      ui.input.focus();
      return;
    }
    keepKey(value);
    showKeyForm(false);
    void load();
  });

  ui.refresh.addEventListener('click', () => {
    if (key) void load();
  });

  ui.forget.addEventListener('click', () => {
    loadSeq++; // a load still running must not show this key's numbers after all
    dropKey();
    showNothing();
    ui.usage.removeAttribute('aria-busy');
    ui.refresh.disabled = false;
    setAlert('');
    setStatus('The key was forgotten by this page.');
    showKeyForm(true);
    ui.input.focus();
  });

  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      if (shownDays && ui.chart.clientWidth && ui.chart.clientWidth !== drawnWidth) renderChart(shownDays);
    }).observe(ui.chart);
  }

  const saved = storedKey();
  if (saved) {
    key = saved;
    showKeyForm(false);
    void load();
  } else {
    showKeyForm(true);
  }
})();
`;
