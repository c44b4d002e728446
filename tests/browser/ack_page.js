// ack_page.js - drives Debian's /usr/bin/chromium (headless) through the
// guardians' confirmation page (GET/POST /a/<token>, dispatcher/ack.c) for
// tests/integration/test_ack_page.py.
//
//   node ack_page.js CONFIG_JSON
//
// CONFIG_JSON: {"one": URL of a one-child link (broadcast with choices),
//               "three": URL of a guardian-of-three link (same broadcast),
//               "invalid": URL of a link that is not valid,
//               "comment": the comment to type (holds markup),
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

/* Press Tab until the focused element matches `sel` (at most `limit`
 * presses); returns how many presses it took, or -1. */
async function tabToSel(page, sel, limit = 40) {
  for (let i = 1; i <= limit; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => !!document.activeElement && document.activeElement.matches(s), sel))
      return i;
  }
  return -1;
}

/* What is focused now, in a few words (for the report). */
function focused(page) {
  return page.evaluate(() => {
    const e = document.activeElement;
    return e ? `${e.tagName.toLowerCase()}[${e.getAttribute('type') || ''}]` : null;
  });
}

/* Controls that stick out of the page's column (the body's content
 * box) on the right, as "tag[type]: pixels". */
function outside(page) {
  return page.evaluate(() => {
    const b = document.body;
    const right = b.getBoundingClientRect().right - parseFloat(getComputedStyle(b).paddingRight);
    return Array.from(document.querySelectorAll('input:not([type=hidden]), button, .body'))
      .map((e) => [e, e.getBoundingClientRect().right - right])
      .filter(([, px]) => px > 0.5)
      .map(([e, px]) => `${e.tagName.toLowerCase()}[${e.getAttribute('type') || ''}]: ${Math.round(px)}`);
  });
}

/* axe and sideways overflow at 390 and 1280 px, a screenshot at each. */
async function look(page, name) {
  const r = {};
  r.overflow390 = await overflowAt(page, 390);
  r.outside390 = await outside(page);
  r.axe390 = await axe(page);
  await page.screenshot({ path: path.join(cfg.shots, `ack_page-${name}-390.png`), fullPage: true });
  r.overflow1280 = await overflowAt(page, 1280);
  r.axe1280 = await axe(page);
  await page.screenshot({ path: path.join(cfg.shots, `ack_page-${name}-1280.png`), fullPage: true });
  await overflowAt(page, 390); // the rest is done on the phone
  return r;
}

/* Recorded confirmations on a page: [{child, answer, comment}], one per
 * child's section (or the page of one child). */
function recordedOn(page) {
  return page.evaluate(() => {
    const kids = Array.from(document.querySelectorAll('section.kid'));
    return (kids.length ? kids : [document.body])
      .filter((s) => s.querySelector('.answer'))
      .map((s) => {
        const h = s.querySelector('h2.child');
        const c = s.querySelector('.comment');
        return { child: h ? h.textContent : null, answer: s.querySelector('.answer').textContent,
          comment: c ? c.textContent : null };
      });
  });
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
    let dialogs = 0;
    page.on('dialog', (d) => { dialogs++; d.dismiss(); });
    // Every document response: its status and CSP, by step.
    let step = 'start';
    page.on('response', (r) => {
      if (r.request().resourceType() === 'document') {
        (statuses[step] = statuses[step] || []).push(r.status());
        csps[step] = r.headers()['content-security-policy'] || '';
      }
    });

    // ---- one child, with choices -------------------------------------
    step = 'one';
    await page.goto(cfg.one, { waitUntil: 'load' });
    res.one = await look(page, 'one');
    res.one.scripts = await page.evaluate(() => document.scripts.length);
    res.one.lang = await page.evaluate(() => document.documentElement.lang);
    res.one.title = await page.title();
    res.one.choices = await page.$$eval('input[name=a]', (xs) => xs.map((x) => x.closest('label').textContent.trim()));

    // Submitting without an answer: the browser's `required` stops it.
    step = 'required';
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    res.required = {};
    res.required.tabsToButton = await tabToSel(page, 'button[type=submit]');
    await page.keyboard.press('Enter');
    // No navigation may follow: the first radio reports itself invalid.
    res.required.valid = await page.$eval('form', (f) => f.checkValidity());
    res.required.message = await page.$eval('input[name=a]', (x) => x.validationMessage);
    res.required.navigated = (statuses.required || []).length;

    // Forced (required removed, as an old browser would send it): the
    // 400 page says what to fix.
    step = 'forced';
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.evaluate(() => {
        document.querySelectorAll('[required]').forEach((x) => x.removeAttribute('required'));
        document.querySelector('form').submit();
      }),
    ]);
    res.forced = { status: statuses.forced, title: await page.title(),
      err: await page.textContent('.err').catch(() => null),
      errRole: await page.getAttribute('.err', 'role').catch(() => null),
      forms: await page.$$eval('form', (f) => f.length) };
    Object.assign(res.forced, await look(page, 'one-400'));

    // The keyboard alone: Tab into the answers, arrow to the second one,
    // Tab to the comment and type, Tab to the button and press Enter.
    step = 'answer';
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    res.keys = {};
    res.keys.tabsToRadio = await tabToSel(page, 'input[name=a]');
    await page.keyboard.press('ArrowDown');
    res.keys.checked = await page.$eval('input[name=a]:checked', (x) => x.value).catch(() => null);
    res.keys.tabsToComment = await tabToSel(page, 'input[name=c]');
    await page.keyboard.type(cfg.comment);
    res.keys.tabsToButton = await tabToSel(page, 'button[type=submit]');
    res.keys.focusOutline = await page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
    });
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    res.thanks = { status: statuses.answer,
      time: await page.$eval('time', (t) => ({ text: t.textContent, datetime: t.dateTime })),
      en: await page.$$eval('[lang=en]', (xs) => xs.map((x) => x.textContent)),
      ok: await page.textContent('.ok').catch(() => null),
      recorded: await recordedOn(page),
      injected: await page.evaluate(() => document.querySelectorAll('.comment *').length),
      forms: await page.$$eval('form', (f) => f.length) };
    Object.assign(res.thanks, await look(page, 'one-thanks'));

    // ---- a guardian of three -----------------------------------------
    step = 'three';
    await page.goto(cfg.three, { waitUntil: 'load' });
    res.three = await look(page, 'three');
    res.three.children = await page.$$eval('h2.child', (hs) => hs.map((h) => h.textContent));
    res.three.forms = await page.$$eval('form', (fs) => fs.map((f) => {
      const c = f.querySelector('input[name=child]');
      return { child: c ? c.value : null, radios: f.querySelectorAll('input[name=a]').length,
        button: f.querySelector('button').textContent };
    }));
    // Each group of answers has its own name to the screen reader.
    res.three.legends = await page.$$eval('fieldset', (fs) => fs.map((f) => {
      const l = f.querySelector('legend');
      return l ? l.textContent : null;
    }));
    // To a screen reader each child is a region named by its name, and
    // its button says whose it is.
    res.three.regions = {};
    for (const name of res.three.children) {
      const buttons = page.getByRole('region', { name, exact: true }).getByRole('button');
      const n = await buttons.count();
      res.three.regions[name] = { buttons: n,
        described: n === 0 ? null : await buttons.first().evaluate((b) => {
          const d = document.getElementById(b.getAttribute('aria-describedby') || '-');
          return d ? d.textContent : null;
        }) };
    }
    // The second child's form, by keyboard: its first answer (Space), a
    // comment, Enter on its button.
    step = 'kid';
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const kid = cfg.kid;
    res.kid = {};
    res.kid.tabsToRadio = await tabToSel(page, `form:has(input[name=child][value="${kid}"]) input[name=a]`);
    await page.keyboard.press('Space');
    res.kid.checked = await page.evaluate((k) => {
      const x = document.querySelector(`form:has(input[name=child][value="${k}"]) input[name=a]:checked`);
      return x ? x.value : null;
    }, kid);
    res.kid.tabsToComment = await tabToSel(page, `form:has(input[name=child][value="${kid}"]) input[name=c]`);
    await page.keyboard.type('Kid comment');
    res.kid.tabsToButton = await tabToSel(page, `form:has(input[name=child][value="${kid}"]) button`);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    res.kid.status = statuses.kid;
    res.kid.recorded = await recordedOn(page);
    res.kid.forms = await page.$$eval('form', (fs) => fs.map((f) => {
      const c = f.querySelector('input[name=child]');
      return c ? c.value : null;
    }));
    Object.assign(res.kid, await look(page, 'three-one-done'));

    // The form for all at once: the third answer, no comment, Enter.
    step = 'all';
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    res.all = {};
    res.all.tabsToRadio = await tabToSel(page, 'form:has(input[name=child][value="*"]) input[name=a]');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    res.all.checked = await page.evaluate(() => {
      const x = document.querySelector('form:has(input[name=child][value="*"]) input[name=a]:checked');
      return x ? x.value : null;
    });
    res.all.tabsToButton = await tabToSel(page, 'form:has(input[name=child][value="*"]) button');
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.keyboard.press('Enter')]);
    res.all.status = statuses.all;
    res.all.recorded = await recordedOn(page);
    res.all.forms = await page.$$eval('form', (f) => f.length);
    Object.assign(res.all, await look(page, 'three-done'));

    // ---- the invalid link ----------------------------------------------
    step = 'invalid';
    const r404 = await page.goto(cfg.invalid, { waitUntil: 'load' });
    res.invalid = { status: r404.status(), h1: await page.textContent('h1'),
      text: await page.textContent('body') };
    Object.assign(res.invalid, await look(page, 'invalid'));

    res.dialogs = dialogs;
  } finally {
    await ctx.close();
  }
  say(Object.assign({ event: 'done', consoleErrors, csps, statuses }, res));
  process.exit(0);
})().catch((e) => {
  say({ event: 'error', message: String(e && e.stack || e) });
  process.exit(1);
});
