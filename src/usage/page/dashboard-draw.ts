/**
 * The drawing part of the usage page's script (dashboard-script.ts): the limit cards and the note
 * of a refused key, the 30-day table and the SVG chart. Plain browser JavaScript spliced into that
 * script's function, whose names (ui, count, seconds, ...) it uses; the same rules hold: text goes
 * in with textContent and setAttribute only, no template literals.
 */
import { SETTINGS } from '../../config/settings';

/** Prepaid credits the page calls low for a key without refill: the alerts' default threshold. */
const LOW_CREDITS = SETTINGS.alertCreditsBelow.default;

export const DASHBOARD_DRAW = String.raw`
  function add(parent, tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }

  function addValue(parent, tag, className, field, value, text) {
    const node = add(parent, tag, className, text);
    node.setAttribute('data-field', field);
    node.setAttribute('data-value', String(value));
    return node;
  }

  function renderLimits(limits) {
    clearInterval(countdown);
    ui.limits.replaceChildren();
    const started = Date.now();
    const resets = [];
    for (const limit of limits) {
      const card = add(ui.limits, 'div', 'card limit');
      card.setAttribute('data-policy', String(limit.policy));
      add(card, 'h3', '', limit.policy === 'ip' ? 'Rate limit of your network' : 'Rate limit of this key');
      const big = add(card, 'p', 'big');
      addValue(big, 'span', '', 'remaining', limit.remaining, count.format(limit.remaining));
      add(big, 'span', 'of', ' left of ');
      addValue(big, 'span', '', 'limit', limit.limit, count.format(limit.limit));
      const meter = add(card, 'meter');
      meter.min = 0;
      meter.max = Math.max(1, limit.limit);
      meter.value = Math.max(0, limit.remaining);
      meter.low = meter.max * 0.2;
      meter.high = meter.max * 0.5;
      meter.optimum = meter.max;
      meter.setAttribute('aria-label', limit.remaining + ' of ' + limit.limit + ' requests left');
      const sub = add(card, 'p', 'sub');
      addValue(sub, 'span', '', 'window_seconds', limit.window_seconds, windowName(limit.window_seconds) + ', ');
      const reset = addValue(sub, 'span', '', 'reset_seconds', limit.reset_seconds, '');
      resets.push([reset, limit.reset_seconds]);
    }
    if (limits.length === 0) add(ui.limits, 'p', 'help', 'No rate limit applies to this key.');
    const tick = () => {
      const elapsed = Math.floor((Date.now() - started) / 1000);
      for (const [node, total] of resets) {
        const left = total - elapsed;
        node.textContent = left > 0 ? 'resets in ' + seconds(left) : 'has reset: refresh to see it';
      }
    };
    tick();
    if (resets.length) countdown = setInterval(tick, 1000);
  }

  /** Why requests with the key are refused right now, if they are: the limit that frees it last. */
  function limitedText(usage) {
    const limits = Array.isArray(usage.rate_limits) ? usage.rate_limits : [];
    let last = null;
    for (const limit of limits) {
      if (limit.remaining <= 0 && (!last || limit.reset_seconds > last.reset_seconds)) last = limit;
    }
    if (last) {
      const what = last.policy === 'month' ? 'its monthly quota is used up' : 'its limit "' + last.policy + '" is used up';
      return 'Requests with this key are refused right now: ' + what + ', for ' + seconds(last.reset_seconds) + ' more.';
    }
    if (usage.credits === 0) return 'Requests with this key are refused right now: it has no prepaid credits left.';
    return '';
  }

  /**
   * A warning before the key runs out: 80% of its monthly quota used, or prepaid credits low
   * (under a fifth of their refill, or under ${LOW_CREDITS} without one). Empty when neither holds,
   * and once the key is refused (limitedText says so then).
   */
  function bannerText(usage) {
    const parts = [];
    const quota = usage.monthly_quota;
    if (quota && quota.limit > 0 && quota.used * 100 >= 80 * quota.limit && quota.remaining > 0) {
      const share = Math.floor((quota.used * 100) / quota.limit);
      parts.push('has used ' + share + '% of its monthly quota (' + count.format(quota.used) + ' of ' + count.format(quota.limit) + ')');
    }
    const credits = usage.credits;
    const refill = usage.credits_refill;
    const low = refill ? credits * 5 < refill.amount : credits < ${LOW_CREDITS};
    if (typeof credits === 'number' && credits > 0 && low) parts.push('has ' + count.format(credits) + ' prepaid credits left');
    return parts.length ? 'This key ' + parts.join(' and ') + '.' : '';
  }

  function renderTable(days) {
    ui.rows.replaceChildren();
    const today = days.length ? days[days.length - 1].day : '';
    for (let i = days.length - 1; i >= 0; i--) {
      const d = days[i];
      const row = add(ui.rows, 'tr', d.day === today ? 'today' : '');
      row.setAttribute('data-day', String(d.day));
      const th = add(row, 'th', '', dayLong.format(utcDate(d.day)) + (d.day === today ? ' (today)' : ''));
      th.setAttribute('scope', 'row');
      addValue(row, 'td', '', 'allowed', d.allowed, count.format(d.allowed));
      addValue(row, 'td', d.rate_limited > 0 ? 'limited' : '', 'rate_limited', d.rate_limited, count.format(d.rate_limited));
    }
  }

  function svg(parent, name, attrs, text) {
    const node = document.createElementNS(SVG_NS, name);
    for (const attr of Object.keys(attrs)) node.setAttribute(attr, String(attrs[attr]));
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }

  /** A step of 1, 2 or 5 times a power of ten that divides 0..max into about four gridlines. */
  function gridStep(max) {
    const rough = Math.max(max, 1) / 4;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const n = rough / power;
    return Math.max(1, (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * power);
  }

  function renderChart(days) {
    drawnWidth = ui.chart.clientWidth;
    const width = Math.max(240, Math.floor(drawnWidth || 600));
    const height = width < 480 ? 180 : 220;
    const pad = { top: 10, right: 6, bottom: 24, left: 38 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    let max = 0;
    let allowed = 0;
    let limited = 0;
    for (const d of days) {
      max = Math.max(max, d.allowed, d.rate_limited);
      allowed += d.allowed;
      limited += d.rate_limited;
    }
    const step = gridStep(max);
    const top = Math.max(step, Math.ceil(max / step) * step);
    const y = (v) => pad.top + plotH - (v / top) * plotH;

    const root = document.createElementNS(SVG_NS, 'svg');
    root.setAttribute('width', String(width));
    root.setAttribute('height', String(height));
    root.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    root.setAttribute('role', 'img');
    root.setAttribute('aria-label', 'Requests per day over the last 30 days: ' + count.format(allowed) + ' allowed, ' +
      count.format(limited) + ' refused by a rate limit. The same numbers are in the table below.');

    const grid = svg(root, 'g', { class: 'grid' });
    for (let v = 0; v <= top; v += step) {
      svg(grid, 'line', { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) });
      svg(grid, 'text', { x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, compact.format(v));
    }

    const slot = plotW / days.length;
    const barW = Math.max(1, Math.min(14, slot * 0.36));
    const gap = Math.max(0.5, slot * 0.05);
    const labelEvery = Math.max(1, Math.ceil(days.length / Math.max(2, Math.floor(plotW / 64))));
    const axis = svg(root, 'g', { class: 'axis' });
    days.forEach((d, i) => {
      const isToday = i === days.length - 1;
      const x0 = pad.left + i * slot;
      const mid = x0 + slot / 2;
      const label = dayShort.format(utcDate(d.day));
      const group = svg(root, 'g', { class: isToday ? 'day today' : 'day', 'data-day': d.day });
      const hit = svg(group, 'rect', { class: 'hit', x: x0, y: pad.top, width: slot, height: plotH });
      svg(hit, 'title', {}, label + ': ' + count.format(d.allowed) + ' allowed, ' + count.format(d.rate_limited) + ' rate-limited');
      const bars = [
        ['allowed', d.allowed, mid - gap / 2 - barW, ' allowed'],
        ['limited', d.rate_limited, mid + gap / 2, ' rate-limited'],
      ];
      for (const [kind, value, x, noun] of bars) {
        const h = value > 0 ? Math.max(1.5, (value / top) * plotH) : 0;
        const bar = svg(group, 'rect', { class: 'bar ' + kind, x: x, y: pad.top + plotH - h, width: barW, height: h, 'data-value': value });
        svg(bar, 'title', {}, label + ': ' + count.format(value) + noun);
      }
      if ((days.length - 1 - i) % labelEvery === 0) {
        const anchor = mid < pad.left + 20 ? 'start' : mid > width - pad.right - 20 ? 'end' : 'middle';
        svg(axis, 'text', { x: anchor === 'start' ? x0 : anchor === 'end' ? x0 + slot : mid, y: height - 6, 'text-anchor': anchor }, isToday ? 'Today' : label);
      }
    });
    svg(root, 'line', { class: 'baseline', x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) });
    if (max === 0) svg(root, 'text', { class: 'empty', x: pad.left + plotW / 2, y: pad.top + plotH / 2, 'text-anchor': 'middle' }, 'No requests in the last 30 days');
    ui.chart.replaceChildren(root);
  }
`;
