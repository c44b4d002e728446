// unsubscribe.js - drives Debian's /usr/bin/chromium (headless) through
// the one-click unsubscribe page (GET/POST /u/<token>,
// dispatcher/http/unsub.c) for tests/integration/test_unsubscribe_page.py.
//
//   node unsubscribe.js CONFIG_JSON
//
// CONFIG_JSON: {"url": URL of an unsubscribe link (from a mail),
//               "vi": the link of a mail in Vietnamese (with its ?lang=),
//               "invalid": URL of a link that is not valid,
//               "shots": directory for the screenshots,
//               "profile": a fresh Chromium user data directory}
//
// Writes one JSON line on stdout: {"event":"done", ...every check's
// outcome} and exits 0, or {"event":"error","message":...} and exits 1.
// The Python side asserts; this file only observes.
'use strict';
const path = require('path');
const { chromium } = require('playwright-core');
const { axe, overflowAt } = require('./a11y');

const cfg = JSON.parse(process.argv[2]);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function tabToSel(page, sel, limit = 20) {
  for (let i = 1; i <= limit; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => !!document.activeElement && document.activeElement.matches(s), sel))
      return i;
  }
  return -1;
}

/* axe and sideways overflow at 390 and 1280 px, a screenshot at each,
 * and what the page says. */
async function look(page, name) {
  const r = {};
  r.overflow390 = await overflowAt(page, 390);
  r.axe390 = await axe(page);
  await page.screenshot({ path: path.join(cfg.shots, `unsubscribe-${name}-390.png`), fullPage: true });
  r.overflow1280 = await overflowAt(page, 1280);
  r.axe1280 = await axe(page);
  await page.screenshot({ path: path.join(cfg.shots, `unsubscribe-${name}-1280.png`), fullPage: true });
  await overflowAt(page, 390);
  Object.assign(r, await page.evaluate(() => ({
    lang: document.documentElement.lang,
    title: document.title,
    h1: (document.querySelector('h1') || {}).textContent || null,
    category: (document.querySelector('.cat strong') || {}).textContent || null,
    err: (document.querySelector('.err') || {}).textContent || null,
    ok: (document.querySelector('.ok') || {}).textContent || null,
    forms: document.forms.length,
    buttons: document.querySelectorAll('button').length,
    scripts: document.scripts.length,
    links: Array.from(document.querySelectorAll('a')).map((a) => a.getAttribute('href')),
    langs: Array.from(document.querySelectorAll('.switch a')).map((a) => ({
      href: a.getAttribute('href'), hreflang: a.getAttribute('hreflang'), lang: a.lang, text: a.textContent,
    })),
    action: document.forms.length ? document.forms[0].getAttribute('action') : null,
  })));
  return r;
}

(async () => {
  const consoleErrors = [];
  const csps = {};
  const statuses = {};
  const ctx = await chromium.launchPersistentContext(cfg.profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 390, height: 844 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const res = {};
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    let step = 'start';
    page.on('response', (r) => {
      if (r.request().resourceType() === 'document') {
        (statuses[step] = statuses[step] || []).push(r.status());
        csps[step] = r.headers()['content-security-policy'] || '';
      }
    });

    // ---- the page a link opens: nothing changes yet ------------------
    step = 'form';
    await page.goto(cfg.url, { waitUntil: 'load' });
    res.form = await look(page, 'form');

    // ---- English, then back --------------------------------------------
    step = 'en';
    await page.goto(cfg.url + '?lang=en', { waitUntil: 'load' });
    res.en = await look(page, 'form-en');

    // ---- the Vietnamese mail's link; unknown and other languages --------
    step = 'vi';
    await page.goto(cfg.vi, { waitUntil: 'load' });
    res.vi = await look(page, 'form-vi');
    step = 'xx';
    await page.goto(cfg.url + '?lang=xx', { waitUntil: 'load' });
    res.xx = await look(page, 'form-xx');
    step = 'jajp';
    await page.goto(cfg.url + '?lang=ja-JP', { waitUntil: 'load' });
    res.jajp = await look(page, 'form-ja-jp');
    step = 'bad';
    await page.goto(cfg.url + '?lang=%3Cb%3E', { waitUntil: 'load' });
    res.bad = await look(page, 'form-bad');
    step = 'zh';
    await page.goto(cfg.url + '?lang=zh', { waitUntil: 'load' });
    res.zh = await look(page, 'form-zh');
    // From the Japanese page to Português with the keyboard alone.
    step = 'pt';
    await page.goto(cfg.url, { waitUntil: 'load' });
    res.ptKeys = { tabs: await tabToSel(page, '.switch a[hreflang=pt]') };
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    res.ptKeys.url = page.url();
    res.ptKeys.lang = await page.evaluate(() => document.documentElement.lang);
    res.ptKeys.h1 = await page.textContent('h1');

    // ---- with the keyboard alone: Tab to the button, Enter -------------
    step = 'keys';
    await page.goto(cfg.url, { waitUntil: 'load' });
    res.keys = { tabsToButton: await tabToSel(page, 'button[type=submit]') };
    res.keys.focusOutline = await page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
    });
    step = 'done';
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    res.done = await look(page, 'done');

    // ---- a link that is not valid ----------------------------------------
    step = 'invalid';
    await page.goto(cfg.invalid, { waitUntil: 'load' });
    res.invalid = await look(page, 'invalid');

    say({ event: 'done', ...res, statuses, csps, consoleErrors });
    await ctx.close();
    process.exit(0);
  } catch (e) {
    say({ event: 'error', message: String(e && e.stack || e), partial: res });
    await ctx.close().catch(() => {});
    process.exit(1);
  }
})();
