// register.js - drives Debian's /usr/bin/chromium (headless, 390 px phone
// viewport) through the guardians' registration page (/r, web/register/,
// dispatcher/http/register.c) for tests/integration/test_register_page.py.
//
//   node register.js CONFIG_JSON
//
// CONFIG_JSON: {"base": kairand's URL, "first": {"id", "pass"} of a sheet,
//               "mom", "dad", "pt": the addresses to register (mom by
//               the link, dad on the English page and pt on the
//               Portuguese one by the 6-digit code), "strings": {code:
//               web/register/strings-<code>.json} of pt and zh,
//               "messages": the fake SMTP server's messages.jsonl,
//               "shots": screenshot directory, "profile": a fresh
//               Chromium user data directory}
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

/* The text of the newest mail to addr in the fake SMTP server's store
 * (base64 body, as kairan writes it), waiting up to 30 s for the n-th. */
async function mailTo(addr, n) {
  for (let i = 0; i < 300; i++) {
    let lines = [];
    try { lines = fs.readFileSync(cfg.messages, 'utf8').split('\n').filter((x) => x.trim()); } catch (e) { /* not yet */ }
    const got = lines.map((x) => { try { return JSON.parse(x); } catch (e) { return null; } })
      .filter((m) => m && m.rcpt.includes(addr));
    if (got.length >= n) {
      const data = got[n - 1].data;
      const body = data.slice(data.indexOf('\r\n\r\n') + 4);
      return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    }
    await sleep(100);
  }
  throw new Error(`no mail ${n} to ${addr}`);
}

/* axe and sideways overflow at 390 and 1280 px, a screenshot at each. */
async function look(page, name) {
  const r = {};
  r.overflow390 = await overflowAt(page, 390);
  r.axe390 = (await axe(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
  await page.screenshot({ path: path.join(cfg.shots, `register-${name}-390.png`), fullPage: true });
  r.overflow1280 = await overflowAt(page, 1280);
  r.axe1280 = (await axe(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
  await overflowAt(page, 390);
  return r;
}

const visible = (page, id) => page.evaluate((x) => !document.getElementById(x).hidden, id);
const msg = (page) => page.textContent('#msg');

/* The language list as the page shows it, and what it is called. */
const langList = (page) => page.evaluate(() => {
  const l = document.getElementById('lang');
  return {
    tag: l.tagName, name: l.getAttribute('aria-label'), value: l.value,
    options: Array.from(l.querySelectorAll('option')).map((o) => ({ value: o.value, lang: o.lang, text: o.textContent })),
  };
});

/* The start step's texts in the page's language. */
const startTexts = (page) => page.evaluate(() => ({
  lang: document.documentElement.lang, title: document.title,
  head: document.getElementById('h-start').textContent,
  next: document.querySelector('#f-start button').textContent,
}));

/* Type the sheet's ID and passcode and press 次へ with the keyboard. */
async function start(page, id, pass) {
  await page.getByLabel('ID', { exact: true }).fill(id);
  await page.getByLabel('パスコード', { exact: true }).fill(pass);
  await page.getByLabel('パスコード', { exact: true }).focus();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
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
    // An answer of 4xx is logged by Chromium as "Failed to load resource":
    // expected here (wrong passcodes, a used link); anything else counts.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('response', (r) => {
      if (r.request().resourceType() === 'document') csps.push(r.headers()['content-security-policy'] || '');
    });

    // ---- the sheet's URL: ID filled in, Japanese -----------------------
    await page.setExtraHTTPHeaders({ 'X-Real-IP': '203.0.113.9' });
    await page.goto(`${cfg.base}/r?id=${cfg.first.id}`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'passcode');
    res.start = await look(page, 'start');
    res.start.lang = await page.evaluate(() => document.documentElement.lang);
    res.start.idValue = await page.inputValue('#id');
    res.start.button = await page.textContent('#f-start button');
    res.start.list = await langList(page);

    // ---- a stranger's wrong passcodes: 401 x5, then locked -------------
    res.wrong = [];
    for (let i = 0; i < 6; i++) {
      const resp = page.waitForResponse((r) => r.url().endsWith('/r/start'));
      await start(page, cfg.first.id, '3333-3333-3333');
      res.wrong.push((await resp).status());
    }
    await page.waitForFunction(() => document.getElementById('msg').className.includes('err'));
    res.wrongMsg = await msg(page);
    res.wrongRole = await page.getAttribute('#msg', 'role');
    // The right passcode from the stranger's address: still locked.
    let resp = page.waitForResponse((r) => r.url().endsWith('/r/start'));
    await start(page, cfg.first.id, cfg.first.pass);
    res.lockedRight = (await resp).status();

    // ---- the family at its own address ---------------------------------
    await page.setExtraHTTPHeaders({ 'X-Real-IP': '198.51.100.7' });
    resp = page.waitForResponse((r) => r.url().endsWith('/r/start'));
    await start(page, cfg.first.id.toLowerCase(), cfg.first.pass.replace(/-/g, ' '));
    res.family = (await resp).status();
    await page.waitForFunction(() => !document.getElementById('s-contact').hidden);
    res.contact = await look(page, 'contact');
    res.contact.who = await page.textContent('#who');
    res.contact.focus = await page.evaluate(() => document.activeElement.id);
    res.contact.consentLabel = await page.textContent('label[for=consent]');
    res.contact.lineButton = await page.getByRole('button', { name: 'LINEで受け取る' }).count();
    // The school app: a code to type in the app (POST /v1/devices).
    await page.getByRole('button', { name: 'アプリで受け取る' }).click();
    await page.waitForFunction(() => document.getElementById('app-code').textContent !== '');
    res.app = await look(page, 'app');
    res.app.code = await page.textContent('#app-code');
    res.app.expanded = await page.getAttribute('#app', 'aria-expanded');
    await page.getByLabel('メールアドレス', { exact: true }).fill(cfg.mom);
    await page.getByLabel('お名前').fill('<b>田中 花子</b>');
    await page.getByLabel('続柄').fill('母');
    // Without consent: the page says what to do and sends nothing.
    await page.getByRole('button', { name: '確認メールを送る' }).click();
    res.noConsent = { msg: await msg(page), focus: await page.evaluate(() => document.activeElement.id),
      stillHere: await visible(page, 's-contact') };
    await page.getByLabel(/同意/).check();
    // A name with a private-use character (gaiji, U+E000): refused, the
    // page names the character's place with 〓, focus on the name.
    await page.getByLabel('お名前').fill('田中 \uE000子');
    await page.getByRole('button', { name: '確認メールを送る' }).click();
    await page.waitForFunction(() => document.getElementById('msg').textContent.includes('〓'));
    res.gaiji = await look(page, 'gaiji');
    Object.assign(res.gaiji, { msg: await msg(page), focus: await page.evaluate(() => document.activeElement.id),
      role: await page.getAttribute('#msg', 'role'), stillHere: await visible(page, 's-contact') });
    await page.getByLabel('お名前').fill('<b>田中 花子</b>');
    // LINE: the friend-add link, its QR code and a link code to send.
    await page.getByRole('button', { name: 'LINEで受け取る' }).click();
    await page.waitForFunction(() => document.getElementById('line-code').textContent !== '');
    await page.waitForFunction(() => document.getElementById('line-qr').complete &&
      document.getElementById('line-qr').naturalWidth > 0);
    res.line = await look(page, 'line');
    res.line.code = await page.textContent('#line-code');
    res.line.expanded = await page.getAttribute('#line', 'aria-expanded');
    res.line.href = await page.getAttribute('#line-link', 'href');
    res.line.qrWidth = await page.evaluate(() => document.getElementById('line-qr').naturalWidth);
    res.line.friendShown = await visible(page, 'line-friend');
    await page.getByRole('button', { name: '確認メールを送る' }).click();
    await page.waitForFunction(() => !document.getElementById('s-code').hidden);
    res.code = await look(page, 'code-sent');
    res.code.sentTo = await page.textContent('#sent-to');

    // ---- the link from the mail, in a fresh tab ------------------------
    const text = await mailTo(cfg.mom, 1);
    const link = text.match(/https?:\/\/\S+\/r#v=[A-Za-z0-9_-]+/)[0];
    const tab = await ctx.newPage();
    tab.on('pageerror', (e) => errors.push(String(e)));
    tab.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    await tab.goto(link, { waitUntil: 'load' });
    await tab.waitForFunction(() => !document.getElementById('s-verify').hidden);
    res.verify = await look(tab, 'verify');
    res.verify.button = await tab.getByRole('button', { name: '登録する' }).count();
    await tab.getByRole('button', { name: '登録する' }).click();
    await tab.waitForFunction(() => !document.getElementById('s-done').hidden);
    res.done = await look(tab, 'done');
    res.done.heading = await tab.textContent('#h-done');
    res.done.url = tab.url();
    // The same link again: refused, the page says so.
    await tab.goto(link, { waitUntil: 'load' });
    await tab.waitForFunction(() => !document.getElementById('s-verify').hidden);
    resp = tab.waitForResponse((r) => r.url().endsWith('/r/verify'));
    await tab.getByRole('button', { name: '登録する' }).click();
    res.again = { status: (await resp).status() };
    await tab.waitForFunction(() => document.getElementById('msg').textContent !== '');
    res.again.msg = await msg(tab);
    await tab.close();

    // ---- a second guardian, in English, by the 6-digit code ------------
    await page.goto(`${cfg.base}/r`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.getElementById('lang').tagName === 'SELECT');
    await page.getByRole('combobox', { name: '言語 (Language)' }).selectOption('en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    res.en = await look(page, 'en');
    res.en.head = await page.textContent('#h-start');
    res.en.next = await page.textContent('#f-start button');
    await start(page, cfg.first.id, cfg.first.pass);
    await page.waitForFunction(() => !document.getElementById('s-contact').hidden);
    await page.getByLabel('E-mail address', { exact: true }).fill(cfg.dad);
    await page.getByLabel(/agree/).check();
    await page.getByRole('button', { name: 'Send the confirmation mail' }).click();
    await page.waitForFunction(() => !document.getElementById('s-code').hidden);
    const dadText = await mailTo(cfg.dad, 1);
    const code = dadText.match(/^([0-9]{6})\r?$/m)[1];
    await page.getByLabel(/6 digits/).fill(code === '000000' ? '111111' : '000000');
    await page.getByRole('button', { name: 'Register' }).click();
    await page.waitForFunction(() => document.getElementById('msg').className.includes('err'));
    res.badCode = await msg(page);
    res.badCodeCls = await page.getAttribute('#msg', 'class');
    await page.getByLabel(/6 digits/).fill(code);
    await page.getByRole('button', { name: 'Register' }).click();
    await page.waitForFunction(() => !document.getElementById('s-done').hidden);
    res.enDone = await page.textContent('#h-done');
    res.enDoneLook = await look(page, 'en-done');
    res.injected = await page.evaluate(() => document.querySelectorAll('#who *').length);

    // ---- a third guardian, in Portuguese chosen by the keyboard alone --
    const pt = cfg.strings.pt;
    await page.goto(`${cfg.base}/r`, { waitUntil: 'load' });
    // the choice of English is kept (localStorage)
    await page.waitForFunction(() => document.getElementById('lang').tagName === 'SELECT' &&
      document.documentElement.lang === 'en');
    res.pt = { tabs: await tabTo(page, 'lang') };
    await page.keyboard.press('p'); // the list's type-ahead: Português
    await page.waitForFunction(() => document.documentElement.lang === 'pt');
    Object.assign(res.pt, await look(page, 'pt'), await startTexts(page));
    res.pt.list = await langList(page);
    res.pt.focus = await page.evaluate(() => document.activeElement.id);
    // a mistyped passcode: the server's failure in the page's language
    await start(page, cfg.first.id, '3333-3333-3333');
    await page.waitForFunction(() => document.getElementById('msg').className.includes('err'));
    res.pt.wrongMsg = await msg(page);
    await start(page, cfg.first.id, cfg.first.pass);
    await page.waitForFunction(() => !document.getElementById('s-contact').hidden);
    res.pt.contactHead = await page.textContent('#h-contact');
    res.ptContactLook = await look(page, 'pt-contact');
    await page.getByLabel(pt.email, { exact: true }).fill(cfg.pt);
    await page.getByLabel(pt.consent).check();
    await page.getByRole('button', { name: pt.sendMail }).click();
    await page.waitForFunction(() => !document.getElementById('s-code').hidden);
    res.ptMail = await mailTo(cfg.pt, 1);
    await page.getByLabel(pt.code).fill(res.ptMail.match(/^([0-9]{6})\r?$/m)[1]);
    await page.getByRole('button', { name: pt.register }).click();
    await page.waitForFunction(() => !document.getElementById('s-done').hidden);
    res.pt.done = await page.textContent('#h-done');
    res.ptDoneLook = await look(page, 'pt-done');

    // ---- Chinese (Simplified) by the link's ?lang=zh -------------------
    await page.goto(`${cfg.base}/r?lang=zh`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.documentElement.lang !== 'ja');
    res.zh = await look(page, 'zh');
    Object.assign(res.zh, await startTexts(page));
    res.zh.list = await langList(page);

    // ---- Vietnamese and Filipino, the same way -------------------------
    for (const code of ['vi', 'fil']) {
      await page.goto(`${cfg.base}/r?lang=${code}`, { waitUntil: 'load' });
      await page.waitForFunction(() => document.documentElement.lang !== 'ja');
      res[code] = await look(page, code);
      Object.assign(res[code], await startTexts(page));
    }

    res.errors = errors;
    res.csps = csps;
    say({ event: 'done', ...res });
    await ctx.close();
    process.exit(0);
  } catch (e) {
    say({ event: 'error', message: String(e && e.stack || e), partial: res, errors });
    await ctx.close().catch(() => {});
    process.exit(1);
  }
})();
