// console_signup.js - drives Debian's /usr/bin/chromium (headless) through
// the console's 名簿 for guardians signing up (issue 15), for
// tests/integration/test_console_signup_page.py.
//
//   node console_signup.js '{"url": ..., "login": ..., "password": ...,
//                            "newPassword": ..., "csv": TEXT, "group": G,
//                            "shots": DIR, "profile": DIR}'
//
// An admin logs in with the keyboard, drops a class list with students
// without contacts on 名簿 (the dry run says 連絡先なし N 名), applies it,
// prints the registration sheets (the page is saved as a download), again
// (every sheet live: skipped), reissues one group (asked first), shows
// 未登録 per class and sends the reminder (asked first).  Every step with
// the keyboard (focus and Enter or Space); at each: axe-core, no sideways
// scroll at 390 px, nothing made from data, screenshots at 390 and 1280
// px.  One JSON line on stdout: {"event": "done", ...} or {"event":
// "error", "message"}.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const { axe, overflowAt, tabTo } = require('./a11y');

const cfg = JSON.parse(process.argv[2]);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

(async () => {
  const out = { pages: {}, errors: [], dialogs: [], downloads: [] };
  const ctx = await chromium.launchPersistentContext(cfg.profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => {
      // The session check before login answers 401.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) out.errors.push(m.text());
    });
    page.on('pageerror', (e) => out.errors.push(String(e)));
    // The console asks before a reissue and before the reminder: accepted
    // here, and what it asked is kept.
    page.on('dialog', (d) => { out.dialogs.push([d.type(), d.message()]); d.accept(); });

    async function check(name) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.screenshot({ path: path.join(cfg.shots, `console_signup_${name}_1280.png`), fullPage: true });
      const overflow = await overflowAt(page, 390);
      await page.screenshot({ path: path.join(cfg.shots, `console_signup_${name}_390.png`), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
      const violations = await axe(page);
      const injected = await page.evaluate(() =>
        document.querySelectorAll('main img, main script, main b, main iframe').length);
      out.pages[name] = { overflow, violations, injected };
    }

    async function press(id, key) {
      await page.focus('#' + id);
      await page.keyboard.press(key || 'Enter');
    }

    // The sheets button pressed with the keyboard; the file it saves.
    async function printSheets() {
      // Emptied first, so that the count that appears is this press's.
      await page.$eval('#signup-sheets-out', (o) => { o.textContent = ''; });
      const dl = page.waitForEvent('download', { timeout: 20000 }).catch(() => null);
      await press('signup-sheets');
      await page.waitForSelector('#signup-sheets-count');
      const text = await page.textContent('#signup-sheets-out');
      const d = /作りました/.test(text) ? await dl : null;
      let body = null, name = null;
      if (d) {
        name = d.suggestedFilename();
        body = fs.readFileSync(await d.path(), 'utf8');
      }
      return { text, name, body };
    }

    await page.goto(cfg.url, { waitUntil: 'load' });
    await page.waitForSelector('#login-form');
    out.tabsToLogin = await tabTo(page, 'login-id');
    await page.keyboard.type(cfg.login);
    await page.keyboard.press('Tab');
    await page.keyboard.type(cfg.password);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#pw-form');
    await page.getByLabel('新しいパスワード', { exact: true }).fill(cfg.newPassword);
    await page.getByLabel('新しいパスワード（確認）').fill(cfg.newPassword);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#nav a[data-page="roster"]');
    await page.focus('#nav a[data-page="roster"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#roster-drop');

    // The class list: students without any contact are kept, and counted.
    await page.evaluate((csv) => {
      const dt = new DataTransfer();
      dt.items.add(new File([csv], '1年.csv', { type: 'text/csv' }));
      const z = document.getElementById('roster-drop');
      z.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, cfg.csv);
    await page.waitForSelector('#roster-counts');
    out.noContact = await page.textContent('#roster-no-contact');
    out.badRows = await page.$$eval('#roster-bad tbody tr', (x) => x.length);
    await check('import_dry');
    await press('roster-apply');
    await page.waitForFunction(() => document.querySelector('#roster-result h3') &&
      document.querySelector('#roster-result h3').textContent === '反映しました');
    // The group list of the sheets' select is read when the page opens:
    // open 名簿 again so that it has the groups just imported.
    await page.evaluate(() => { location.hash = '#home'; });
    await page.waitForFunction(() => !document.getElementById('signup'));
    await page.focus('#nav a[data-page="roster"]');
    await page.keyboard.press('Enter');
    await page.waitForFunction((g) => Array.from(document.querySelectorAll('#signup-group option')).some((o) => o.value === g), cfg.group);

    // The controls are reached with Tab from the group select.
    await page.focus('#signup-group');
    out.tabsToPrint = await tabTo(page, 'signup-sheets', 10);
    out.reissueHint = await page.textContent('#signup-reissue-hint');
    await check('signup');

    out.first = await printSheets();
    out.second = await printSheets();
    await check('sheets_again');
    // Reissue one group: asked first (a confirm), then issued anew.
    await page.selectOption('#signup-group', cfg.group);
    await press('signup-reissue', 'Space');
    out.reissueChecked = await page.$eval('#signup-reissue', (x) => x.checked);
    out.third = await printSheets();

    // 未登録 of the whole school.
    await page.selectOption('#signup-group', '');
    await press('signup-unreg');
    await page.waitForSelector('#signup-unreg-list tbody tr');
    out.unregH = await page.textContent('#signup-unreg-h');
    out.classes = await page.$$eval('#signup-classes li', (ls) => ls.map((l) => [l.dataset.class, l.querySelector('.big').textContent]));
    out.unreg = await page.$$eval('#signup-unreg-list tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells).map((c) => c.textContent)));
    await check('unregistered');

    // The reminder: asked first, then sent.
    await press('signup-remind');
    await page.waitForSelector('#signup-remind-done');
    out.remindDone = await page.textContent('#signup-remind-done');
    out.remindHref = await page.$eval('#signup-remind-done a', (a) => a.getAttribute('href'));
    await check('remind');
    out.xss = await page.evaluate(() => window.__kairan_xss === true);
    say(Object.assign({ event: 'done' }, out));
  } catch (e) {
    say({ event: 'error', message: String(e && e.stack || e), partial: out });
  } finally {
    await ctx.close();
  }
})();
