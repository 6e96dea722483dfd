// isr-proxy dashboard: polls the admin listener's JSON endpoints and draws them; charts are inline SVG.
// Plain JS, no build step, no dependency. Everything from the proxy (keys, headers, tags, errors) goes into the
// page as text (textContent), never as markup: it comes from the origin.
// @ts-check
'use strict';

/** How often the figures are read. */
const POLL_MS = 2000;
/** sessionStorage key of the pasted token: kept for this tab only, sent only in `Authorization`. */
const TOKEN_KEY = 'isr-proxy-admin-token';
const SVG_NS = 'http://www.w3.org/2000/svg';
/** Request counts shown in the requests card and chart (the others are summed into the total only). */
const MAIN_STATUSES = ['HIT', 'STALE', 'MISS', 'BYPASS'];

const state = {
  /** @type {{interval_ms: number, request_labels: string[], points: any[]}} */
  history: { interval_ms: 5000, request_labels: [], points: [] },
  /** @type {number | undefined} */ lastSeq: undefined,
  /** Cursors of the listing pages seen so far (the first page has none). @type {(string|null)[]} */
  cursors: [null],
  /** @type {string | null} */ nextCursor: null,
  /** @type {{path: string, variant: Record<string,string>} | null} */ detail: null,
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  actionsEnabled: false,
  ticks: 0,
};

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * An element with attributes and children (strings become text nodes).
 * @param {string} tag @param {Record<string, any>} [attrs] @param {...(Node|string|null|undefined)} children
 */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'onclick') node.addEventListener('click', value);
    else if (value !== false && value != null) node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

/** An SVG element. @param {string} tag @param {Record<string, any>} attrs @param {string} [text] */
function s(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text != null) node.textContent = text;
  return node;
}

const int = new Intl.NumberFormat('en-US');
const dec = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const fmtInt = (/** @type {number} */ n) => int.format(n);
const fmtPct = (/** @type {number | null} */ r) => (r == null ? '–' : `${dec.format(r * 100)} %`);
function fmtBytes(/** @type {number} */ n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? dec.format(n) : n} ${units[i]}`;
}
function fmtSeconds(/** @type {number} */ secs) {
  if (secs < 60) return `${Math.round(secs)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
}
/** A time of day, with the date when it is not today. */
function fmtTime(/** @type {string} */ rfc3339) {
  const at = new Date(rfc3339);
  return at.toDateString() === new Date().toDateString() ? at.toLocaleTimeString() : at.toLocaleString();
}

/** GET a JSON document from the admin listener. `/health` answers 503 with a body while not ready. */
async function getJSON(/** @type {string} */ path) {
  const response = await fetch(path, { cache: 'no-store', credentials: 'omit' });
  const body = await response.json().catch(() => null);
  if (!response.ok && !(path === '/health' && body)) {
    throw new Error(`${path}: ${response.status} ${body && body.error ? body.error : response.statusText}`);
  }
  return body;
}

function showError(/** @type {string | null} */ text) {
  const box = $('error');
  box.hidden = !text;
  box.textContent = text || '';
}

// ---- Now: cards and the header ----------------------------------------------------------------------------

function renderStats(/** @type {any} */ stats) {
  const counts = stats.requests;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  $('stat-requests').textContent = fmtInt(total);
  const split = $('stat-by-status');
  split.replaceChildren();
  for (const label of MAIN_STATUSES) {
    split.append(h('dt', {}, label), h('dd', { 'data-status': label }, fmtInt(counts[label] || 0)));
  }
  $('stat-hit-ratio').textContent = fmtPct(stats.hit_ratio);
  $('stat-origin').textContent = fmtInt(stats.origin_fetches);
  $('stat-in-flight').textContent = fmtInt(stats.regenerations.in_flight);
  $('stat-failed').textContent = fmtInt(stats.regenerations.failed_total);
  $('stat-connections').textContent = fmtInt(stats.client_connections);
  const cache = stats.cache;
  $('stat-entries').textContent = `${fmtInt(cache.entries)} pages`;
  const meter = /** @type {HTMLMeterElement} */ ($('stat-meter'));
  meter.max = cache.max_bytes || 1;
  meter.value = cache.bytes;
  meter.high = meter.max * 0.9;
  $('stat-bytes').textContent = `${fmtBytes(cache.bytes)} of ${fmtBytes(cache.max_bytes)} max_size`
    + ` (${fmtPct(cache.max_bytes ? cache.bytes / cache.max_bytes : 0)}) · ${fmtInt(cache.evictions)} evicted`;
}

function renderHealth(/** @type {any} */ health) {
  const badge = $('health');
  badge.textContent = health.ok ? 'serving' : 'not serving';
  badge.className = `badge ${health.ok ? 'ok' : 'bad'}`;
  const reachable = health.origin.reachable;
  const origin = $('fact-origin');
  origin.textContent = reachable == null ? 'not asked yet' : reachable ? 'reachable' : 'unreachable';
  origin.className = reachable === false ? 'down' : reachable ? 'up' : '';
  const tiers = $('fact-tiers');
  tiers.replaceChildren(h('span', {}, 'memory'));
  for (const tier of health.tiers) {
    tiers.append(' · ', h('span', { class: tier.up ? 'up' : 'down' }, `${tier.name} ${tier.up ? 'up' : 'down'}`));
  }
  const config = health.config;
  $('fact-generation').textContent = `${config.generation}${config.generation ? ' (reloaded)' : ''}`
    + (config.restart_needed.length ? ` · restart needed for ${config.restart_needed.join(', ')}` : '');
  const pre = health.prerender;
  $('fact-prerender').textContent = pre.total === 0 ? 'none' : `${pre.done}/${pre.total}`
    + (pre.failed ? `, ${pre.failed} failed` : '') + (pre.finished ? '' : ' (running)');
  setActionsEnabled(Boolean(config.actions_enabled));
}

// ---- Last hour: the charts --------------------------------------------------------------------------------

/** The charts' coordinate box: about their size on screen, so the axis text stays about 10 px. */
const W = 400, H = 150, LEFT = 46, RIGHT = 8, TOP = 10, BOTTOM = 20;

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`. */
function niceMax(/** @type {number} */ max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= max) || max;
}

function relLabel(/** @type {number} */ ms) {
  const secs = Math.round(-ms / 1000);
  if (secs === 0) return 'now';
  return secs < 120 ? `−${secs} s` : `−${Math.round(secs / 60)} min`;
}

/**
 * Draws a line chart into the figure `id`. Points are [x, y] with x in ms relative to the newest sample (≤ 0)
 * and y null for a gap.
 * @param {string} id
 * @param {{name: string, cls: string, pts: [number, number|null][], now: string}[]} series
 * @param {{fmt: (v: number) => string, yMax?: number, limit?: number, limitLabel?: string, reloads?: number[], area?: boolean, summary: string}} opts
 */
function drawChart(id, series, opts) {
  const figure = $(id);
  const caption = /** @type {HTMLElement} */ (figure.querySelector('figcaption'));
  figure.replaceChildren(caption);
  const allX = series.flatMap((line) => line.pts.map((p) => p[0]));
  if (allX.length < 1) {
    figure.append(h('p', { class: 'empty' }, 'collecting samples…'));
    return;
  }
  const span = Math.max(60_000, -Math.min(...allX));
  const ys = series.flatMap((line) => line.pts.map((p) => p[1]).filter((y) => y != null));
  const yMax = opts.yMax || niceMax(Math.max(0, ...(/** @type {number[]} */ (ys)), opts.limit || 0));
  const x = (/** @type {number} */ ms) => LEFT + (W - LEFT - RIGHT) * (1 + ms / span);
  const y = (/** @type {number} */ v) => TOP + (H - TOP - BOTTOM) * (1 - v / yMax);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.summary });
  for (const f of [0, 0.5, 1]) {
    svg.append(s('line', { class: 'grid', x1: LEFT, x2: W - RIGHT, y1: y(yMax * f), y2: y(yMax * f) }));
    svg.append(s('text', { x: LEFT - 6, y: y(yMax * f) + 3, 'text-anchor': 'end' }, opts.fmt(yMax * f)));
  }
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const ms = -span * (1 - f);
    const anchor = f === 0 ? 'start' : f === 1 ? 'end' : 'middle';
    svg.append(s('text', { x: x(ms), y: H - 6, 'text-anchor': anchor }, relLabel(ms)));
  }
  for (const at of opts.reloads || []) {
    svg.append(s('line', { class: 'reload', x1: x(at), x2: x(at), y1: TOP, y2: H - BOTTOM },));
    svg.append(s('text', { x: x(at) + 3, y: TOP + 8 }, 'reload'));
  }
  if (opts.limit != null) {
    svg.append(s('line', { class: 'limit', x1: LEFT, x2: W - RIGHT, y1: y(opts.limit), y2: y(opts.limit) }));
    // Under the line when it is the top of the chart, so the label stays inside.
    const below = y(opts.limit) < TOP + 12;
    svg.append(s('text', { x: W - RIGHT, y: y(opts.limit) + (below ? 11 : -4), 'text-anchor': 'end' }, opts.limitLabel || ''));
  }
  for (const line of series) {
    let d = '', pen = 'M';
    for (const [px, py] of line.pts) {
      if (py == null) { pen = 'M'; continue; }
      d += `${pen}${x(px).toFixed(1)},${y(py).toFixed(1)}`;
      pen = 'L';
    }
    const group = s('g', { class: `c-${line.cls}` });
    if (opts.area && line.pts.length > 1 && d) {
      const first = line.pts[0][0], last = line.pts[line.pts.length - 1][0];
      group.append(s('path', { class: 'area', d: `${d}L${x(last)},${y(0)}L${x(first)},${y(0)}Z` }));
    }
    // One sample is a dot, not an invisible zero-length line.
    if (line.pts.length === 1 && line.pts[0][1] != null) {
      group.append(s('circle', { class: 'line', cx: x(line.pts[0][0]), cy: y(line.pts[0][1]), r: 2 }));
    }
    group.append(s('path', { class: 'line', d }));
    svg.append(group);
  }
  figure.append(svg);
  const legend = h('ul', { class: 'legend' });
  for (const line of series) legend.append(h('li', { class: `c-${line.cls}` }, `${line.name} ${line.now}`));
  figure.append(legend);
}

function renderHistory() {
  const { points, request_labels: labels, interval_ms: interval } = state.history;
  const last = points[points.length - 1];
  const rel = (/** @type {any} */ p) => p.elapsed_ms - last.elapsed_ms;
  $('history-span').textContent = points.length
    ? `· ${points.length} samples, one every ${fmtSeconds(interval / 1000)}` : '';
  /** Per-interval rates of `pick(point)`, per `unit` ms. @param {(p: any) => number} pick @returns {[number, number|null][]} */
  const rate = (pick, unit) => points.slice(1).map((p, i) => {
    const dt = p.elapsed_ms - points[i].elapsed_ms;
    return [rel(p), dt > 0 ? Math.max(0, pick(p) - pick(points[i])) * unit / dt : null];
  });
  const lastOf = (/** @type {[number, number|null][]} */ pts) => (pts.length ? pts[pts.length - 1][1] : null);
  const reloads = points.slice(1).filter((p, i) => p.config_generation !== points[i].config_generation).map(rel);
  const perSec = (/** @type {number|null} */ v) => (v == null ? '–' : `${dec.format(v)}/s`);
  const perMin = (/** @type {number|null} */ v) => (v == null ? '–' : `${dec.format(v)}/min`);

  const requestSeries = MAIN_STATUSES.map((name) => {
    const index = labels.indexOf(name);
    const pts = rate((p) => p.requests[index], 1000);
    return { name, cls: name, pts, now: perSec(lastOf(pts)) };
  });
  drawChart('chart-requests', requestSeries, {
    fmt: (v) => dec.format(v), reloads,
    summary: `Requests per second by cache status over the last ${relLabel(-span(points))}: `
      + requestSeries.map((line) => `${line.name} ${line.now}`).join(', '),
  });

  const at = (/** @type {string} */ name) => labels.indexOf(name);
  const ratio = points.slice(1).map((p, i) => {
    const q = points[i];
    const hits = p.requests[at('HIT')] - q.requests[at('HIT')] + p.requests[at('STALE')] - q.requests[at('STALE')];
    const lookups = hits + p.requests[at('MISS')] - q.requests[at('MISS')];
    return /** @type {[number, number|null]} */ ([rel(p), lookups > 0 ? hits / lookups : null]);
  });
  const lastRatio = [...ratio].reverse().find((p) => p[1] != null);
  drawChart('chart-ratio', [{ name: 'hit ratio', cls: 'ratio', pts: ratio, now: fmtPct(lastRatio ? lastRatio[1] : null) }], {
    fmt: (v) => `${Math.round(v * 100)} %`, yMax: 1, area: true, reloads,
    summary: `Hit ratio per sample, latest ${fmtPct(lastRatio ? lastRatio[1] : null)}`,
  });

  const origin = [
    { name: 'origin fetches', cls: 'fetch', pick: (/** @type {any} */ p) => p.origin_fetches },
    { name: 'regenerations', cls: 'regen', pick: (/** @type {any} */ p) => p.regenerations },
    { name: 'failures', cls: 'fail', pick: (/** @type {any} */ p) => p.regeneration_failures },
  ].map(({ name, cls, pick }) => {
    const pts = rate(pick, 60_000);
    return { name, cls, pts, now: perMin(lastOf(pts)) };
  });
  drawChart('chart-origin', origin, {
    fmt: (v) => dec.format(v), reloads,
    summary: `Origin work per minute: ${origin.map((line) => `${line.name} ${line.now}`).join(', ')}`,
  });

  const gauge = (/** @type {(p: any) => number} */ pick) => points.map((p) => /** @type {[number, number]} */ ([rel(p), pick(p)]));
  const maxBytes = last ? last.max_bytes : 0;
  drawChart('chart-bytes', [{ name: 'stored', cls: 'bytes', pts: gauge((p) => p.bytes), now: last ? fmtBytes(last.bytes) : '–' }], {
    fmt: fmtBytes, limit: maxBytes, limitLabel: `max_size ${fmtBytes(maxBytes)}`, yMax: maxBytes || undefined,
    area: true, reloads,
    summary: `Bytes stored: ${last ? fmtBytes(last.bytes) : 'none'} of ${fmtBytes(maxBytes)}`,
  });
  drawChart('chart-entries', [{ name: 'pages', cls: 'entries', pts: gauge((p) => p.entries), now: last ? fmtInt(last.entries) : '–' }], {
    fmt: (v) => fmtInt(Math.round(v)), area: true, reloads,
    summary: `Pages in memory: ${last ? fmtInt(last.entries) : 'none'}`,
  });
  drawChart('chart-running', [{ name: 'running', cls: 'regen', pts: gauge((p) => p.regenerations_in_flight), now: last ? fmtInt(last.regenerations_in_flight) : '–' }], {
    fmt: (v) => dec.format(v), reloads,
    summary: `Regenerations running: ${last ? fmtInt(last.regenerations_in_flight) : 'none'}`,
  });
}

const span = (/** @type {any[]} */ points) => (points.length ? points[points.length - 1].elapsed_ms - points[0].elapsed_ms : 0);

async function refreshHistory() {
  const after = state.lastSeq == null ? '' : `?after=${state.lastSeq}`;
  const doc = await getJSON(`/history${after}`);
  const points = state.lastSeq == null ? doc.points : state.history.points.concat(doc.points);
  const newest = points.length ? points[points.length - 1].elapsed_ms : 0;
  state.history = { ...doc, points: points.filter((/** @type {any} */ p) => p.elapsed_ms >= newest - 3_600_000) };
  if (points.length) state.lastSeq = points[points.length - 1].seq;
  renderHistory();
}

// ---- Regenerations ----------------------------------------------------------------------------------------

function renderRegenerations(/** @type {any} */ regen) {
  const running = $('regen-running');
  running.replaceChildren(...regen.in_flight.map((/** @type {any} */ r) =>
    h('tr', {}, h('td', { class: 'key' }, r.key), h('td', {}, r.kind), h('td', {}, fmtSeconds(r.running_ms / 1000)))));
  if (!regen.in_flight.length) running.append(emptyRow(3, 'none running'));
  $('regen-running-count').textContent = regen.in_flight_total ? `(${regen.in_flight_total})` : '';
  const failed = $('regen-failed');
  failed.replaceChildren(...regen.recent_failures.slice(0, 8).map((/** @type {any} */ r) =>
    h('tr', {}, h('td', { class: 'key' }, r.key), h('td', {}, fmtTime(r.started_at)),
      h('td', { class: 'reason' }, r.error || r.result))));
  if (!regen.recent_failures.length) failed.append(emptyRow(3, 'no failures on record'));
  $('regen-failed-count').textContent = regen.failed_total ? `(${fmtInt(regen.failed_total)} since start)` : '';
}

const emptyRow = (/** @type {number} */ cols, /** @type {string} */ text) =>
  h('tr', {}, h('td', { colspan: cols, class: 'none' }, text));

// ---- Cache listing and entry detail -----------------------------------------------------------------------

/** The path (with its kept query) that revalidates and looks up a listed page. */
const pagePath = (/** @type {any} */ page) => (page.query ? `${page.path}?${page.query}` : page.path);

function listingQuery() {
  const form = /** @type {HTMLFormElement} */ ($('filters'));
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (value) params.set(name, String(value));
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set('cursor', cursor);
  return params;
}

async function refreshCache() {
  const listing = await getJSON(`/cache?${listingQuery()}`);
  state.nextCursor = listing.next_cursor;
  const rows = $('cache-rows');
  rows.replaceChildren(...listing.entries.map(cacheRow));
  if (!listing.entries.length) rows.append(emptyRow(8, 'no pages on this page of the listing'));
  const page = state.cursors.length;
  $('cache-summary').textContent = `${fmtInt(listing.entries.length)} shown · ${fmtInt(listing.total)} `
    + `${listing.total === 1 ? 'page' : 'pages'} ${/** @type {HTMLInputElement} */ (document.querySelector('#filters [name=tag]')).value ? 'with this tag' : 'in memory'}`;
  $('page-number').textContent = `page ${page}`;
  /** @type {HTMLButtonElement} */ ($('page-prev')).disabled = page === 1;
  /** @type {HTMLButtonElement} */ ($('page-next')).disabled = !listing.next_cursor;
}

function stateBadge(/** @type {string} */ word, /** @type {boolean} */ marked) {
  return h('span', { class: `state ${word}`, title: marked ? 'revalidated by tag: stale until regenerated' : null },
    marked ? `${word} (marked)` : word);
}

function cacheRow(/** @type {any} */ page) {
  const path = pagePath(page);
  return h('tr', { 'data-key': page.key, 'data-state': page.state },
    h('td', { class: 'key' }, h('button', {
      type: 'button', class: 'link', 'aria-label': `Details of ${page.key}`,
      onclick: () => openDetail({ path, variant: page.variant }),
    }, page.key)),
    h('td', {}, stateBadge(page.state, page.marked_stale)),
    h('td', {}, String(page.status)),
    h('td', {}, fmtSeconds(page.age_seconds)),
    h('td', {}, fmtBytes(page.size.weight)),
    h('td', {}, ...page.tags.map((/** @type {string} */ t) => h('span', { class: 'tag' }, t))),
    h('td', {}, page.tiers.join(', ')),
    h('td', {}, rowActions(path)));
}

function rowActions(/** @type {string} */ path) {
  const disabled = !canAct();
  return h('span', { class: 'row-actions' },
    h('button', { type: 'button', class: 'act', disabled, 'aria-label': `Revalidate ${path}`, onclick: () => act('paths', [path], false) }, 'Revalidate'),
    h('button', { type: 'button', class: 'act danger', disabled, 'aria-label': `Purge ${path}`, onclick: () => act('paths', [path], true) }, 'Purge'));
}

async function openDetail(/** @type {{path: string, variant: Record<string,string>}} */ which) {
  state.detail = which;
  await refreshDetail();
  $('detail').focus();
}

async function refreshDetail() {
  if (!state.detail) return;
  const params = new URLSearchParams({ path: state.detail.path });
  for (const [name, value] of Object.entries(state.detail.variant || {})) params.append('variant', `${name}:${value}`);
  const detail = await getJSON(`/cache/entry?${params}`);
  $('detail').hidden = false;
  $('cache-body').classList.add('with-detail');
  $('detail-title').textContent = detail.key;
  const kv = (/** @type {[string, any][]} */ pairs) => h('dl', { class: 'kv' },
    ...pairs.filter(([, v]) => v != null && v !== '').flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const entry = detail.entry;
  const route = detail.route;
  const regen = detail.regeneration;
  const variants = Object.entries(detail.variant).map(([n, v]) => `${n}: ${v}`)
    .concat(detail.vary.map((/** @type {[string, string|null]} */ [n, v]) => `${n}: ${v == null ? '(absent)' : v}`));
  const parts = [
    h('h4', {}, 'Page'),
    entry ? kv([
      ['State', stateBadge(entry.state, entry.marked_stale)],
      ['Status', String(entry.status)],
      ['Generated', `${fmtTime(entry.generated_at)} (${fmtSeconds(entry.age_seconds)} ago)`],
      ['Fresh until', entry.fresh_until ? fmtTime(entry.fresh_until) : 'revalidated on demand only'],
      ['Served stale until', entry.stale_until ? fmtTime(entry.stale_until) : 'revalidated on demand only'],
      ['Revalidate', entry.revalidate_seconds == null ? 'on demand' : fmtSeconds(entry.revalidate_seconds)],
      ['Size', `${fmtBytes(entry.size.body)} body`
        + (entry.size.gzip ? ` · gzip ${fmtBytes(entry.size.gzip)}` : '') + (entry.size.br ? ` · br ${fmtBytes(entry.size.br)}` : '')
        + ` · ${fmtBytes(entry.size.weight)} weighed`],
      ['Tags', entry.tags.length ? h('span', {}, ...entry.tags.map((/** @type {string} */ t) => h('span', { class: 'tag' }, t))) : 'none'],
      ['Tiers', entry.tiers.join(', ')],
    ]) : h('p', { class: 'muted' }, 'Not stored in any tier.'),
    h('h4', {}, 'Route'),
    kv([['Pattern', route.route], ['revalidate', route.revalidate], ['expire', fmtSeconds(route.expire_seconds)],
      ['fallback', route.fallback], ['origin_cache_control', route.origin_cache_control]]),
    h('h4', {}, 'Variants'),
    kv([['This variant', variants.length ? variants.join(' · ') : 'the plain page'],
      ['Vary variants stored', String(detail.vary_variants)]]),
    h('h4', {}, 'Regeneration'),
    kv([['Running now', regen.in_flight ? 'yes' : 'no'],
      ['Last', regen.last ? `${regen.last.result} (${regen.last.kind}, ${fmtTime(regen.last.started_at)}, ${regen.last.duration_ms} ms)`
        + (regen.last.error ? `: ${regen.last.error}` : '') : 'none on record'],
      ['Retry not before', regen.retry_at ? fmtTime(regen.retry_at) : null]]),
    rowActions(state.detail.path),
  ];
  if (entry) {
    parts.push(h('h4', {}, 'Headers'), h('table', { class: 'headers' }, h('tbody', {},
      ...entry.headers.map((/** @type {[string, string]} */ [n, v]) => h('tr', {}, h('td', {}, n), h('td', {}, v))))));
  }
  $('detail-body').replaceChildren(...parts);
}

// ---- Actions ----------------------------------------------------------------------------------------------

const canAct = () => state.actionsEnabled && Boolean(state.token);

function setActionsEnabled(/** @type {boolean} */ enabled) {
  state.actionsEnabled = enabled;
  $('actions-off').hidden = enabled;
  for (const control of document.querySelectorAll('#token-form input, #token-form button')) {
    /** @type {HTMLInputElement} */ (control).disabled = !enabled;
  }
  refreshActionButtons();
}

function refreshActionButtons() {
  const locked = !canAct();
  for (const button of document.querySelectorAll('#action-form button, button.act')) {
    /** @type {HTMLButtonElement} */ (button).disabled = locked;
  }
  $('token-state').textContent = !state.actionsEnabled ? 'actions are off on this proxy'
    : state.token ? 'token set for this tab (sent only in the Authorization header)' : 'no token: actions are locked';
}

/**
 * POSTs one order to the admin listener's /revalidate and shows the result per item.
 * @param {'paths'|'tags'|'prefixes'} kind @param {string[]} items @param {boolean} purge
 */
async function act(kind, items, purge) {
  const out = $('action-result');
  out.replaceChildren(h('p', { class: 'muted' }, `${purge ? 'Purging' : 'Revalidating'} ${items.join(', ')}…`));
  let response, body;
  try {
    response = await fetch('/revalidate', {
      method: 'POST', cache: 'no-store', credentials: 'omit',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${state.token}` },
      body: JSON.stringify({ [kind]: items, purge }),
    });
    body = await response.json().catch(() => null);
  } catch (err) {
    out.replaceChildren(h('p', { class: 'result-bad' }, `Request failed: ${err}`));
    return;
  }
  if (!body || body.error) {
    const hint = response.status === 401 ? ' — check the token' : '';
    out.replaceChildren(h('p', { class: 'result-bad', 'data-status': response.status },
      `Refused (${response.status}): ${body ? body.error : response.statusText}${hint}`));
    return;
  }
  const rows = [];
  for (const [path, result] of Object.entries(body.paths || {})) {
    const ok = typeof result === 'string';
    rows.push(h('tr', { 'data-item': path }, h('td', {}, 'page'), h('td', { class: 'key' }, path),
      h('td', { class: ok ? 'result-ok' : 'result-bad' }, ok ? result : result.error)));
  }
  const counted = (/** @type {string} */ what, /** @type {Record<string, number>} */ map) => {
    for (const [item, pages] of Object.entries(map || {})) {
      rows.push(h('tr', { 'data-item': item }, h('td', {}, what), h('td', { class: 'key' }, item),
        h('td', { class: 'result-ok' }, `${fmtInt(pages)} ${pages === 1 ? 'page' : 'pages'} ${purge ? 'purged' : 'marked stale'}`)));
    }
  };
  counted('tag', body.tags);
  counted('prefix', body.prefixes);
  out.replaceChildren(
    h('p', { class: body.revalidated ? 'result-ok' : 'result-bad', 'data-status': response.status },
      body.revalidated ? `Done (${response.status})` : `Some items failed (${response.status}); the last good pages are kept`),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Kind'), h('th', {}, 'Item'), h('th', {}, 'Result'))), h('tbody', {}, ...rows)));
  const focused = document.activeElement && document.activeElement.getAttribute('aria-label');
  await Promise.allSettled([refreshCache(), refreshDetail(), refreshNow()]);
  // The clicked row button was redrawn: give the focus to its successor, so keyboard users stay in place.
  const successor = focused && document.querySelector(`button[aria-label="${CSS.escape(focused)}"]`);
  if (successor) /** @type {HTMLElement} */ (successor).focus();
}

// ---- Wiring -----------------------------------------------------------------------------------------------

async function refreshNow() {
  const [stats, health, regen] = await Promise.all([getJSON('/stats'), getJSON('/health'), getJSON('/regenerations')]);
  renderStats(stats);
  renderHealth(health);
  renderRegenerations(regen);
}

/** Whether the pointer or the keyboard focus is in the listing or the detail, where a redraw would lose a
 * click or the focus. */
const userInListing = () => Boolean(document.querySelector('.listing:hover, #detail:hover')
  || (document.activeElement && document.activeElement.closest('.listing, #detail')));

async function tick() {
  const jobs = [refreshNow()];
  const historyEvery = Math.max(1, Math.round(state.history.interval_ms / POLL_MS));
  if (state.ticks % historyEvery === 0) jobs.push(refreshHistory());
  if (!userInListing()) jobs.push(refreshCache(), refreshDetail());
  state.ticks++;
  const failed = (await Promise.allSettled(jobs)).find((r) => r.status === 'rejected');
  if (failed) state.lastSeq = undefined; // a restarted proxy numbers its samples anew
  showError(failed ? `Cannot read the proxy: ${/** @type {PromiseRejectedResult} */ (failed).reason.message}` : null);
  $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function loop() {
  if (/** @type {HTMLInputElement} */ ($('live')).checked) await tick();
  setTimeout(loop, POLL_MS);
}

function wire() {
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    state.cursors = [null];
    refreshCache().catch((err) => showError(err.message));
  });
  $('page-next').addEventListener('click', () => {
    if (!state.nextCursor) return;
    state.cursors.push(state.nextCursor);
    refreshCache().catch((err) => showError(err.message));
  });
  $('page-prev').addEventListener('click', () => {
    if (state.cursors.length > 1) state.cursors.pop();
    refreshCache().catch((err) => showError(err.message));
  });
  $('detail-close').addEventListener('click', () => {
    state.detail = null;
    $('detail').hidden = true;
    $('cache-body').classList.remove('with-detail');
  });
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('token'));
    state.token = input.value.trim();
    input.value = '';
    if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
    else sessionStorage.removeItem(TOKEN_KEY);
    refreshActionButtons();
    refreshCache().catch(() => {});
  });
  $('token-forget').addEventListener('click', () => {
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    refreshActionButtons();
    refreshCache().catch(() => {});
  });
  $('action-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const submitter = /** @type {HTMLButtonElement | null} */ (/** @type {SubmitEvent} */ (event).submitter);
    const kind = /** @type {any} */ ((/** @type {HTMLInputElement} */ (document.querySelector('[name=kind]:checked'))).value);
    const items = /** @type {HTMLTextAreaElement} */ ($('action-items')).value.split('\n').map((l) => l.trim()).filter(Boolean);
    if (!items.length) {
      $('action-result').replaceChildren(h('p', { class: 'result-bad' }, 'Give at least one item, one per line.'));
      return;
    }
    act(kind, items, Boolean(submitter && submitter.value === 'purge'));
  });
  $('live').addEventListener('change', () => { if (/** @type {HTMLInputElement} */ ($('live')).checked) tick(); });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !$('detail').hidden) $('detail-close').click();
  });
  refreshActionButtons();
}

wire();
loop();
