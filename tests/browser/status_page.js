// status_page.js - drives Debian's /usr/bin/chromium (headless) through
// kairan's status page for tests/integration/test_status_page.py.
//
//   node status_page.js URL GOOD_TOKEN SCREENSHOT USER_DATA_DIR
//
// Protocol (one JSON object per line on stdout):
//   -> {"event":"ready", ...}   logged in, the page shows data
//   <- a line on stdin: {"broadcast": ID, "rejected": ID, "active_total": N}
//   -> {"event":"done", ...}    every check's outcome; exit 0
//   -> {"event":"error", "message": ...}; exit 1
'use strict';
const { chromium } = require('playwright-core');
const readline = require('readline');
const { axe, overflowAt, tabTo } = require('./a11y');

const [url, goodToken, shot, userDataDir] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function nextLine() {
  const rl = readline.createInterface({ input: process.stdin });
  return new Promise((resolve) => rl.once('line', (l) => { rl.close(); resolve(l); }));
}

const consoleErrors = [];
(async () => {
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    let alerts = 0;
    page.on('dialog', (d) => { alerts++; d.dismiss(); });

    const resp = await page.goto(url, { waitUntil: 'load' });
    const csp = resp.headers()['content-security-policy'] || '';

    // A wrong token is refused and nothing is shown.
    await page.fill('#token', 'kn_0123456789abcdef_' + 'A'.repeat(43));
    await page.click('#show');
    await page.waitForFunction(() => /受け付けられません/.test(document.getElementById('msg').textContent),
      null, { timeout: 10000 });
    const refusedMsg = await page.textContent('#msg');
    const mainHiddenAfterBad = await page.isHidden('#main');

    // The good token with the keyboard alone: Tab to the field, type, Enter.
    await page.fill('#token', '');
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const tabs = await tabTo(page, 'token');
    await page.keyboard.type(goodToken);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#main', { state: 'visible', timeout: 15000 });
    await page.waitForFunction(() => document.querySelectorAll('#queues tbody tr').length === 6,
      null, { timeout: 10000 });
    const inputCleared = (await page.inputValue('#token')) === '';
    const stored = await page.evaluate(() => sessionStorage.getItem('kairan.token'));
    say({ event: 'ready' });

    const ids = JSON.parse(await nextLine());
    const sel = `.bc[data-id="${ids.broadcast}"]`;
    await page.waitForSelector(sel, { timeout: 30000 });
    await page.waitForSelector(`${sel}[data-percent="100"]`, { timeout: 40000 });
    const bar = await page.$eval(sel, (d) => ({
      pct: d.querySelector('.pct').textContent,
      delivered: d.querySelector('.seg-delivered').style.width,
      valuenow: d.querySelector('.bar').getAttribute('aria-valuenow'),
      status: d.querySelector('.status').getAttribute('data-status'),
      statusText: d.querySelector('.status').textContent,
    }));
    // More active broadcasts than the list holds (the test adds them to
    // the index): the page says how many of how many it shows.
    await page.waitForFunction((n) => !document.getElementById('bc-count').hidden &&
      document.getElementById('bc-count').textContent.indexOf(String(n)) >= 0,
    ids.active_total, { timeout: 15000 });
    const countJa = await page.textContent('#bc-count');
    // Per school, the busiest first (two schools have something running).
    await page.waitForSelector('#schools-box:not([hidden]) #schools tbody tr', { timeout: 15000 });
    const schools = await page.$$eval('#schools tbody tr',
      (trs) => trs.map((tr) => Array.from(tr.cells).map((td) => td.textContent)));
    // The rejected broadcast's reason holds markup: shown as text, never run.
    await page.waitForFunction((rid) => Array.from(document.querySelectorAll('#rejected li'))
      .some((li) => li.textContent.indexOf(rid) >= 0), ids.rejected, { timeout: 15000 });
    const rejected = await page.$$eval('#rejected li', (lis) => lis.map((li) => li.textContent));
    const injected = await page.evaluate(() => document.querySelectorAll('#rejected img, #rejected script, #rejected b').length);
    const xss = await page.evaluate(() => window.__kairan_xss === true);
    // Two refreshes later the chart has samples and the page still runs.
    await page.waitForTimeout(2500);
    const legend = await page.textContent('#legend');
    const breakers = await page.textContent('#breakers');
    const dlq = await page.textContent('#dlq');
    const langJa = await page.evaluate(() => document.documentElement.lang);
    const headJa = await page.textContent('h2');
    await page.screenshot({ path: shot, fullPage: true });
    const axeWide = await axe(page);
    // On a 390 px phone: nothing scrolls sideways, and axe again.
    const overflow390 = await overflowAt(page, 390);
    const axe390 = await axe(page);
    await page.screenshot({ path: shot.replace(/\.png$/, '-390.png'), fullPage: true });
    await overflowAt(page, 1100);

    // English, with the keyboard alone: Tab to the language menu, a key.
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const langTabs = await tabTo(page, 'lang');
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction((s) => document.documentElement.lang === 'en' &&
      /^done$/.test((document.querySelector(s + ' .status') || {}).textContent || '') &&
      /e-mail/.test(document.getElementById('legend').textContent), sel, { timeout: 15000 });
    const en = await page.evaluate(() => ({
      h2: document.querySelector('h2').textContent,
      legend: document.getElementById('legend').textContent,
      breakers: document.getElementById('breakers').textContent,
      count: document.getElementById('bc-count').textContent,
      title: document.title,
    }));
    await page.screenshot({ path: shot.replace(/\.png$/, '-en.png'), fullPage: true });
    const axeEn = await axe(page);
    const overflow390En = await overflowAt(page, 390);
    await page.screenshot({ path: shot.replace(/\.png$/, '-en-390.png'), fullPage: true });
    await overflowAt(page, 1100);

    // The token survives a reload of the tab (sessionStorage), and so
    // does the language (localStorage, as the console keeps it).
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector('#main', { state: 'visible', timeout: 15000 });
    const langAfterReload = await page.evaluate(() => document.documentElement.lang);
    const legendAfterReload = await page.textContent('#legend');

    say({ event: 'done', csp, refusedMsg, mainHiddenAfterBad, inputCleared,
      storedMatches: stored === goodToken, bar, rejected, injected, xss, alerts,
      legend, breakers, dlq, consoleErrors, tabs, axeWide, overflow390, axe390,
      countJa, schools, langJa, headJa, langTabs, en, axeEn, overflow390En, langAfterReload,
      legendAfterReload });
  } finally {
    await ctx.close();
  }
  process.exit(0); // stdin would keep node running
})().catch((e) => {
  say({ event: 'error', message: String(e && e.stack || e) + ' console: ' + consoleErrors.join(' | ') });
  process.exit(1);
});
