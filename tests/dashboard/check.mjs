// Drives the admin dashboard in headless Chromium; run by tests/dashboard.rs, which starts the origin, the
// proxies and the traffic, and passes what it knows in the environment:
//   ADMIN_URL, PROXY_URL    the proxy with a revalidation token (TOKEN), and its admin listener
//   BARE_ADMIN_URL          the admin listener of a proxy without a token
//   EXPECT                  JSON: the request counts by cache status the traffic made, and the stale and fresh paths
//   SCREENSHOTS             a folder: take light and dark screenshots instead of the checks
// Prints one line per check and exits non-zero on the first failure.
// @ts-check
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const env = (/** @type {string} */ name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run through tests/dashboard.rs)`);
  return value;
};
const WAIT = { timeout: 10_000 };

const profile = mkdtempSync(join(tmpdir(), 'isr-dashboard-chromium-'));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // The flags this machine needs: no sandbox as root, and nothing that reaches for the network on its own.
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`],
});

/** Problems the page itself reported: script errors, CSP violations, failed requests. */
const problems = [];
const ok = (/** @type {string} */ what) => console.log(`ok - ${what}`);
/** Clicks what `selector` finds now, in one step in the page: the listing is redrawn every poll, so an element
 * found first and clicked after may be gone. @param {import('puppeteer-core').Page} page @param {string} selector */
const clickNow = (page, selector) => page.$eval(selector, (e) => /** @type {HTMLElement} */ (e).click());

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
  if (process.env.SCREENSHOTS) await screenshots(page, process.env.SCREENSHOTS);
  else await checks(page);
  assert.deepEqual(problems.filter((p) => !p.includes('401') && !p.includes('403')), [], 'the page reported problems');
  ok('no script errors or CSP violations');
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}

/** @param {import('puppeteer-core').Page} page */
async function checks(page) {
  const admin = env('ADMIN_URL');
  const expect = JSON.parse(env('EXPECT'));
  const response = await page.goto(`${admin}/`, { waitUntil: 'load' });
  assert.ok(response && response.ok(), 'GET / answers 200');
  const headers = response.headers();
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(headers['x-frame-options'], 'DENY');
  ok('the page is served with its security headers');

  // The figures after the known traffic, as the page shows them and as /stats has them.
  await page.waitForFunction(() => document.getElementById('stat-requests')?.textContent !== '–', WAIT);
  const stats = await (await fetch(`${admin}/stats`)).json();
  const shown = await page.evaluate(() => ({
    total: document.getElementById('stat-requests')?.textContent,
    ratio: document.getElementById('stat-hit-ratio')?.textContent,
    entries: document.getElementById('stat-entries')?.textContent,
    origin: document.getElementById('stat-origin')?.textContent,
    failed: document.getElementById('stat-failed')?.textContent,
    byStatus: Object.fromEntries([...document.querySelectorAll('#stat-by-status dd')]
      .map((dd) => [dd.getAttribute('data-status'), dd.textContent])),
  }));
  const total = Object.values(stats.requests).reduce((a, b) => a + b, 0);
  assert.equal(shown.total, String(total), 'total requests');
  for (const [status, count] of Object.entries(expect.requests)) {
    assert.equal(stats.requests[status], count, `/stats ${status}`);
    assert.equal(shown.byStatus[status], String(count), `shown ${status}`);
  }
  assert.equal(shown.ratio, `${(stats.hit_ratio * 100).toFixed(1).replace(/\.0$/, '')} %`, 'hit ratio');
  assert.equal(shown.entries, `${stats.cache.entries} pages`, 'entries');
  assert.equal(shown.origin, String(stats.origin_fetches), 'origin fetches');
  assert.equal(shown.failed, String(stats.regenerations.failed_total), 'failures');
  ok(`the figures match /stats (${JSON.stringify(shown.byStatus)}, hit ratio ${shown.ratio})`);

  await page.waitForSelector('#chart-requests svg path.line', WAIT);
  await page.waitForSelector('#chart-bytes svg line.limit', WAIT);
  ok('the charts are drawn from /history');

  // The listing: the page past its revalidate time is stale, the new one fresh.
  const row = (/** @type {string} */ path) => `#cache-rows tr[data-key="${path}"]`;
  await page.waitForSelector(`${row(expect.stale)}[data-state="stale"]`, WAIT);
  assert.equal(await page.$eval(`${row(expect.stale)} .state`, (e) => e.textContent), 'stale');
  assert.equal(await page.$eval(`${row(expect.fresh)} .state`, (e) => e.textContent), 'fresh');
  ok(`${expect.stale} shows as stale, ${expect.fresh} as fresh`);

  // Filters: a state filter lists only stale pages.
  await page.select('#filters select[name=state]', 'stale');
  await page.click('#filters button[type=submit]');
  await page.waitForFunction((fresh) => !document.querySelector(`#cache-rows tr[data-key="${fresh}"]`), WAIT, expect.fresh);
  assert.ok(await page.$(row(expect.stale)), 'the stale page is still listed');
  await page.select('#filters select[name=state]', '');
  await page.click('#filters button[type=submit]');
  await page.waitForSelector(row(expect.fresh), WAIT);
  ok('the state filter narrows the listing');

  // One entry's detail, opened with the keyboard.
  await page.$eval(`${row(expect.fresh)} button.link`, (e) => /** @type {HTMLElement} */ (e).focus());
  await page.keyboard.press('Enter');
  await page.waitForSelector('#detail:not([hidden]) #detail-body dl', WAIT);
  const detail = await page.$eval('#detail', (e) => e.textContent || '');
  assert.match(detail, /Fresh until/);
  assert.match(detail, new RegExp(expect.tag));
  assert.match(detail, /etag/, 'headers are listed');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail[hidden]', WAIT);
  ok('the entry detail shows freshness, tags and headers, and closes with Escape');

  // No token: the buttons are locked and the endpoint refuses.
  assert.equal(await page.$eval('#action-revalidate', (b) => /** @type {HTMLButtonElement} */ (b).disabled), true);
  assert.equal(await page.$eval(`${row(expect.stale)} button.act`, (b) => /** @type {HTMLButtonElement} */ (b).disabled), true);
  const bare = await page.evaluate(async (path) => (await fetch('/revalidate', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ paths: [path] }),
  })).status, expect.stale);
  assert.equal(bare, 401, 'POST /revalidate without the token');
  ok('without a token the actions are locked and the endpoint answers 401');

  // A wrong token: the click is refused and the page stays stale.
  await page.type('#token', 'not-the-token');
  await page.click('#token-use');
  await page.waitForFunction((sel) => !(/** @type {HTMLButtonElement} */ (document.querySelector(sel)))?.disabled, WAIT, `${row(expect.stale)} button.act`);
  assert.equal(await page.$eval('#token', (i) => /** @type {HTMLInputElement} */ (i).value), '', 'the field is cleared');
  await clickNow(page, `${row(expect.stale)} button.act`);
  await page.waitForSelector('#action-result p[data-status="401"]', WAIT);
  assert.match(await page.$eval('#action-result', (e) => e.textContent || ''), /invalid token/);
  assert.equal(await page.$eval(`${row(expect.stale)}`, (e) => e.getAttribute('data-state')), 'stale');
  ok('a wrong token is refused (401) and changes nothing');

  // The right token: the click regenerates the page, which the public listener then serves.
  const token = env('TOKEN');
  await page.type('#token', token);
  await page.click('#token-use');
  assert.equal(await page.evaluate(() => sessionStorage.length), 1, 'kept in sessionStorage');
  assert.ok(!page.url().includes(token), 'the token is not in the URL');
  await clickNow(page, `${row(expect.stale)} button.act`);
  await page.waitForSelector(`#action-result tr[data-item="${expect.stale}"] .result-ok`, WAIT);
  assert.equal(await page.$eval(`#action-result tr[data-item="${expect.stale}"] .result-ok`, (e) => e.textContent), 'regenerated');
  await page.waitForSelector(`${row(expect.stale)}[data-state="fresh"]`, WAIT);
  const served = await fetch(`${env('PROXY_URL')}${expect.stale}`);
  assert.equal(served.headers.get('x-isr-cache'), 'HIT');
  assert.match(await served.text(), /render 2/, 'the new render is served');
  ok(`a Revalidate click regenerated ${expect.stale} (render 2, fresh)`);

  // A tag, through the form: its pages are marked stale, with the count shown.
  await page.click('#action-form input[value=tags]');
  await page.type('#action-items', expect.tag);
  await page.click('#action-revalidate');
  await page.waitForSelector(`#action-result tr[data-item="${expect.tag}"]`, WAIT);
  assert.match(await page.$eval(`#action-result tr[data-item="${expect.tag}"]`, (e) => e.textContent || ''), /1 page marked stale/);
  await page.waitForSelector(`${row(expect.fresh)}[data-state="stale"]`, WAIT);
  assert.equal(await page.$eval(`${row(expect.fresh)} .state`, (e) => e.textContent), 'stale (marked)');
  ok(`revalidating tag ${expect.tag} marked ${expect.fresh} stale`);

  // A prefix, through the form: every page under /blog is purged, with the count shown.
  await page.click('#action-form input[value=prefixes]');
  await page.$eval('#action-items', (t) => { /** @type {HTMLTextAreaElement} */ (t).value = ''; });
  await page.type('#action-items', '/blog');
  await page.click('#action-purge');
  await page.waitForSelector('#action-result tr[data-item="/blog"]', WAIT);
  assert.match(await page.$eval('#action-result tr[data-item="/blog"]', (e) => e.textContent || ''), /2 pages purged/);
  await page.waitForFunction((sel) => !document.querySelector(sel), WAIT, row(expect.stale));
  assert.equal(await page.$(row(expect.fresh)), null, 'both pages are gone from the listing');
  ok('purging prefix /blog removed both pages');

  // A proxy without a token: the page says actions are off and the endpoint refuses.
  await page.goto(`${env('BARE_ADMIN_URL')}/`, { waitUntil: 'load' });
  await page.waitForSelector('#actions-off:not([hidden])', WAIT);
  assert.equal(await page.$eval('#token', (i) => /** @type {HTMLInputElement} */ (i).disabled), true);
  assert.equal(await page.$eval('#action-purge', (b) => /** @type {HTMLButtonElement} */ (b).disabled), true);
  const off = await page.evaluate(async () => (await fetch('/revalidate', {
    method: 'POST', headers: { authorization: 'Bearer anything', 'content-type': 'application/json' }, body: '{"paths":["/a"]}',
  })).status);
  assert.equal(off, 403);
  ok('on a proxy without a token the page shows actions off and the endpoint answers 403');
}

/** Light and dark screenshots of the whole page, for the docs. @param {import('puppeteer-core').Page} page @param {string} dir */
async function screenshots(page, dir) {
  await page.goto(`${env('ADMIN_URL')}/`, { waitUntil: 'load' });
  await page.waitForSelector('#chart-requests svg path.line', WAIT);
  await page.waitForSelector('#regen-failed td.reason', WAIT);
  await page.select('#filters select[name=limit]', '10');
  await page.click('#filters button[type=submit]');
  await page.type('#token', env('TOKEN'));
  await page.click('#token-use');
  await page.click('#action-form input[value=tags]');
  await page.type('#action-items', 'featured');
  await page.click('#action-revalidate');
  await page.waitForSelector('#action-result tr[data-item="featured"]', WAIT);
  await page.waitForSelector('#cache-rows tr[data-key="/blog/post-12"]', WAIT);
  await clickNow(page, '#cache-rows tr[data-key="/blog/post-12"] button.link');
  await page.waitForSelector('#detail:not([hidden]) #detail-body dl', WAIT);
  await page.evaluate(() => /** @type {HTMLElement} */ (document.activeElement)?.blur());
  await page.mouse.move(0, 0);
  for (const scheme of ['light', 'dark']) {
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const path = join(dir, `dashboard-${scheme}.png`);
    await page.screenshot({ path, fullPage: true });
    ok(`${path} (${Math.round(statSync(path).size / 1024)} KiB)`);
  }
}
