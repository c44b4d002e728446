// mypage.js - drives Debian's /usr/bin/chromium (headless, 390 px phone
// viewport) through the guardian's my page (/m, web/mypage/,
// dispatcher/http/mypage.c) for tests/integration/test_mypage_page.py.
//
//   node mypage.js CONFIG_JSON
//
// CONFIG_JSON: {"base": kairand's URL, "mom": the guardian's address (one
//               mail with the link already sent to it), "sheet": the
//               child's sheet ID, "pt": another child's guardian, whose
//               "pf"."lg" is "pt" (one mail with the link too),
//               "messages": the fake SMTP server's
//               messages.jsonl, "shots": screenshot directory, "profile":
//               a fresh Chromium user data directory}
//
// Writes one JSON line on stdout: {"event":"done", ...every check's
// outcome} and exits 0, or {"event":"error","message":...} and exits 1.
// The Python side asserts; this file only observes.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const { axe, overflowAt, tabTo } = require('./a11y');

const cfg = JSON.parse(process.argv[2]);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* The text of the n-th mail to addr, waiting up to 30 s (base64 body, as
 * kairan writes it). */
async function mailTo(addr, n) {
  for (let i = 0; i < 300; i++) {
    let lines = [];
    try { lines = fs.readFileSync(cfg.messages, 'utf8').split('\n').filter((x) => x.trim()); } catch (e) { /* not yet */ }
    const got = lines.map((x) => { try { return JSON.parse(x); } catch (e) { return null; } })
      .filter((m) => m && m.rcpt.includes(addr))
      .map((m) => {
        const body = m.data.slice(m.data.indexOf('\r\n\r\n') + 4);
        return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
      });
    if (got.length >= n) return got[n - 1];
    await sleep(100);
  }
  throw new Error(`no mail ${n} to ${addr}`);
}

/* axe and sideways overflow at 390 and 1280 px, a screenshot at 390.
 * axeAll390: every violation at 390 px, whatever its impact. */
async function look(page, name) {
  const r = {};
  r.overflow390 = await overflowAt(page, 390);
  r.axeAll390 = await axe(page);
  r.axe390 = r.axeAll390.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  await page.screenshot({ path: path.join(cfg.shots, `mypage-${name}-390.png`), fullPage: true });
  r.overflow1280 = await overflowAt(page, 1280);
  r.axe1280 = (await axe(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
  await overflowAt(page, 390);
  return r;
}

const visible = (page, id) => page.evaluate((x) => !document.getElementById(x).hidden, id);
const msg = (page) => page.textContent('#msg');
const focused = (page) => page.evaluate(() => document.activeElement && document.activeElement.id);
const order = (page) => page.$$eval('#channels li .what span', (xs) => xs.map((x) => x.textContent));
const htmlLang = (page) => page.evaluate(() => document.documentElement.lang);

/* What the page shows in its current language. */
async function texts(page) {
  return {
    lang: await htmlLang(page),
    title: await page.title(),
    mainHead: await page.textContent('#h-main'),
    save: await page.textContent('#save'),
    langLabel: await page.textContent('label[for=lg]'),
    urgentNote: await page.textContent('[data-s=urgentNote]'),
    order: await order(page),
    cats: await page.$$eval('#cats label', (xs) => xs.map((x) => x.textContent)),
    stop: await page.textContent('label[for=stop-email]'),
    ui: await page.inputValue('#uilang'),
    lg: await page.inputValue('#lg'),
    lgOptions: await page.$$eval('#lg option', (xs) => xs.map((x) => [x.value, x.lang, x.textContent])),
    focus: await focused(page),
  };
}

(async () => {
  const errors = [];
  const csps = [];
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
    // A 4xx answer is logged by Chromium as "Failed to load resource":
    // expected here (a code asked for); anything else counts.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('response', (r) => {
      if (r.request().resourceType() === 'document') csps.push(r.headers()['content-security-policy'] || '');
    });

    // ---- the link from the mail --------------------------------------
    const mail = await mailTo(cfg.mom, 1);
    const link = mail.match(/(http:\S+\/m#t=[A-Za-z0-9_.-]+)/)[1];
    await page.goto(link, { waitUntil: 'load' });
    await page.waitForFunction(() => !document.getElementById('s-main').hidden);
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'h-main');
    res.main = await look(page, 'main');
    res.main.lang = await page.evaluate(() => document.documentElement.lang);
    res.main.url = page.url();
    res.main.who = await page.textContent('#who');
    res.main.order = await order(page);
    res.main.save = await page.textContent('#save');
    res.main.langLabel = await page.textContent('label[for=lg]');
    res.main.cats = await page.$$eval('#cats input', (xs) => xs.map((x) => ({ name: x.dataset.name, checked: x.checked, disabled: x.disabled })));
    res.main.urgentNote = await page.textContent('[data-s=urgentNote]');
    res.main.msgs = await page.$$eval('#msgs summary', (xs) => xs.map((x) => x.textContent));
    res.main.address = await page.textContent('#channels li small');
    // Open the message with the keyboard: its body shows.
    await page.focus('#msgs summary');
    await page.keyboard.press('Enter');
    res.main.body = await page.evaluate(() => {
      const d = document.querySelector('#msgs details');
      return d.open ? d.querySelector('.body').textContent : null;
    });

    // ---- order and language (言語) with the keyboard, 保存する ---------
    await page.getByRole('button', { name: 'LINE を上へ' }).focus();
    await page.keyboard.press('Enter');
    res.moved = { order: await order(page), focus: await page.evaluate(() => document.activeElement.getAttribute('aria-label')), msg: await msg(page) };
    await page.getByLabel('言語', { exact: true }).focus();
    await page.keyboard.press('ArrowDown'); // 日本語 -> English
    res.langValue = await page.inputValue('#lg');
    res.tabsToSave = await tabTo(page, 'save');
    let resp = page.waitForResponse((r) => r.url().endsWith('/m/save'));
    await page.keyboard.press('Enter');
    res.saveStatus = (await resp).status();
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    await page.waitForFunction(() => document.getElementById('msg').textContent === 'Saved.');
    res.saved = { msg: await msg(page), title: await page.title(), order: await order(page), save: await page.textContent('#save') };
    res.savedLook = await look(page, 'saved-en');

    // ---- stopping a channel asks for the code --------------------------
    await page.focus('#stop-email');
    await page.keyboard.press('Space');
    resp = page.waitForResponse((r) => r.url().endsWith('/m/save'));
    await page.focus('#save');
    await page.keyboard.press('Enter');
    res.stop = { status: (await resp).status() };
    await page.waitForFunction(() => !document.getElementById('codebox').hidden);
    res.stop.msg = await msg(page);
    res.stop.role = await page.getAttribute('#msg', 'role');
    res.stop.focus = await focused(page);
    res.stop.via = await page.$$eval('#via option', (xs) => xs.map((x) => x.textContent));
    res.codeLook = await look(page, 'code');
    await page.focus('#sendcode');
    resp = page.waitForResponse((r) => r.url().endsWith('/m/code'));
    await page.keyboard.press('Enter');
    res.stop.codeStatus = (await resp).status();
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'code');
    res.stop.codeMsg = await msg(page);
    const cmail = await mailTo(cfg.mom, 2);
    const code = (cmail.match(/^([0-9]{6})\r?$/m) || [])[1];
    res.stop.gotCode = !!code;
    // a mistyped code first: the page's own (English) words for it
    await page.keyboard.type(code === '000000' ? '111111' : '000000');
    resp = page.waitForResponse((r) => r.url().endsWith('/m/save'));
    await page.focus('#save');
    await page.keyboard.press('Enter');
    res.stop.wrongStatus = (await resp).status();
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'code' &&
      document.getElementById('code').value === '');
    res.stop.wrongMsg = await msg(page);
    await page.keyboard.type(code);
    resp = page.waitForResponse((r) => r.url().endsWith('/m/save'));
    await page.focus('#save');
    await page.keyboard.press('Enter');
    res.stop.withCode = (await resp).status();
    await page.waitForFunction(() => document.getElementById('msg').textContent === 'Saved.');
    res.stop.after = { stopped: await page.evaluate(() => document.getElementById('stop-email').checked), codebox: await visible(page, 'codebox') };

    // ---- the page again (the token is kept for this tab only) -----------
    await page.goto(`${cfg.base}/m`, { waitUntil: 'load' });
    await page.waitForFunction(() => !document.getElementById('s-main').hidden);
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    res.again = { order: await order(page), stopped: await page.evaluate(() => document.getElementById('stop-email').checked), lg: await page.inputValue('#lg') };

    // ---- a link that is not valid: the "send me my link" form ----------
    const p2 = await ctx.newPage();
    p2.on('pageerror', (e) => errors.push(String(e)));
    await p2.goto(`${cfg.base}/m#t=AAAA.0000`, { waitUntil: 'load' });
    await p2.waitForFunction(() => !document.getElementById('s-link').hidden);
    // the language this browser last showed (the guardian's English
    // above), not Japanese
    res.link = { msg: await msg(p2), role: await p2.getAttribute('#msg', 'role'), main: await visible(p2, 's-main'),
      lang: await htmlLang(p2), head: await p2.textContent('#h-link') };
    res.linkLook = await look(p2, 'link');
    await p2.getByLabel('ID', { exact: true }).fill(cfg.sheet);
    await p2.getByLabel('E-mail address', { exact: true }).fill(cfg.mom);
    await p2.getByLabel('E-mail address', { exact: true }).focus();
    await p2.keyboard.press('Tab');
    resp = p2.waitForResponse((r) => r.url().endsWith('/m/link'));
    await p2.keyboard.press('Enter');
    res.link.status = (await resp).status();
    // the answer replaces the message shown before (the bad link's)
    await p2.waitForFunction((before) => {
      const t = document.getElementById('msg').textContent;
      return t.length > 0 && t !== before;
    }, res.link.msg);
    res.link.sent = await msg(p2);
    const lmail = await mailTo(cfg.mom, 3);
    res.link.newLink = /\/m#t=[A-Za-z0-9_.-]+/.test(lmail);
    // The form in Vietnamese (the longest texts): a screenshot.
    await p2.selectOption('#uilang', 'vi');
    await p2.waitForFunction(() => document.documentElement.lang === 'vi');
    res.linkViLook = await look(p2, 'link-vi');
    res.link.vi = await p2.textContent('#h-link');
    res.link.viMsg = await msg(p2);

    // ---- a guardian whose language is Portuguese ("pf"."lg" = "pt") -----
    const p3 = await ctx.newPage();
    p3.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    p3.on('pageerror', (e) => errors.push(String(e)));
    const ptmail = await mailTo(cfg.pt, 1);
    await p3.goto(ptmail.match(/(http:\S+\/m#t=[A-Za-z0-9_.-]+)/)[1], { waitUntil: 'load' });
    await p3.waitForFunction(() => !document.getElementById('s-main').hidden);
    await p3.waitForFunction(() => document.activeElement && document.activeElement.id === 'h-main');
    res.pt = await texts(p3);
    res.pt.uiLabel = await p3.textContent('label[for=uilang]');
    res.pt.uiOptions = await p3.$$eval('#uilang option', (xs) => xs.map((x) => [x.value, x.lang, x.textContent]));
    res.ptLook = await look(p3, 'pt');
    // a category unticked here (not saved yet) must stay unticked while the
    // page changes language (it is drawn again), and through two saves
    const catBox = await p3.$eval('#cats input[type=checkbox]:not([disabled])', (x) => [x.id, x.dataset.name]);
    await p3.uncheck('#' + catBox[0]);
    res.keep = { name: catBox[1] };

    // ---- with the keyboard alone: Tab to the list, arrows to 中文 ---------
    // from the heading the page opened on: Shift+Tab back to the header
    res.zhKeys = { tabs: -1, arrows: 0 };
    for (let i = 1; i <= 10 && res.zhKeys.tabs < 0; i++) {
      await p3.keyboard.press('Shift+Tab');
      if (await focused(p3) === 'uilang') res.zhKeys.tabs = i;
    }
    // the list by its visible label (label for=uilang)
    res.zhKeys.byLabel = await p3.getByLabel('表示言語 / Display language', { exact: true }).evaluate((x) => x.id);
    while (res.zhKeys.arrows < 6 && await p3.inputValue('#uilang') !== 'zh') {
      await p3.keyboard.press('ArrowDown');
      res.zhKeys.arrows++;
    }
    await p3.waitForFunction(() => document.documentElement.lang === 'zh-Hans');
    res.zh = await texts(p3);
    res.zhLook = await look(p3, 'zh');
    await p3.focus('#uilang');
    await p3.keyboard.press('ArrowDown');
    await p3.waitForFunction(() => document.documentElement.lang === 'vi');
    res.vi = await texts(p3);
    res.viLook = await look(p3, 'vi');
    await p3.focus('#uilang');
    await p3.keyboard.press('ArrowDown');
    await p3.waitForFunction(() => document.documentElement.lang === 'fil');
    res.fil = await texts(p3);
    res.filLook = await look(p3, 'fil');

    // ---- a language without a strings file: the English page ------------
    await p3.route('**/m/strings-vi.json', (r) => r.fulfill({ status: 404, contentType: 'application/json', body: '{}' }));
    await p3.focus('#uilang');
    await p3.keyboard.press('ArrowUp'); // Filipino -> Tiếng Việt, which now has none
    await p3.waitForFunction(() => document.documentElement.lang === 'en');
    res.noFile = await texts(p3);
    res.keep.afterSwitches = await p3.isChecked('#' + catBox[0]);
    for (const k of ['first', 'second']) {
      const r = p3.waitForResponse((x) => x.url().endsWith('/m/save'));
      await p3.click('#save');
      res.keep[k] = { status: (await r).status(), body: JSON.parse((await r).request().postData()).ox };
      await p3.waitForFunction(() => document.getElementById('msg').className === 'msg' &&
        document.getElementById('msg').textContent !== '' && !document.getElementById('save').disabled);
    }
    res.keep.afterSaves = await p3.isChecked('#' + catBox[0]);

    res.errors = errors;
    res.csps = csps;
    say(Object.assign({ event: 'done' }, res));
    await ctx.close();
    process.exit(0);
  } catch (e) {
    say({ event: 'error', message: String(e && e.stack || e), partial: res, errors });
    await ctx.close();
    process.exit(1);
  }
})();
