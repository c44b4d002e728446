// console.js - drives Debian's /usr/bin/chromium (headless) through the
// staff console (web/console/) for tests/integration/test_console_page.py.
//
//   node console.js '{"url": ..., "login": ..., "password": ..., "newPassword": ...,
//                     "ack": NAME, "scheduled": NAME, "lockLogin": ..., "lockPassword": ...,
//                     "attackedLogin": ..., "attackedPassword": ...,
//                     "shots": DIR, "profile": DIR}'
//
// It logs in with the keyboard alone, changes the initial password, reads
// the home list and a broadcast's page, downloads the CSV, re-sends to the
// unconfirmed, cancels the scheduled broadcast, switches the language,
// logs out, then locks a login with five wrong passwords.  It runs
// axe-core and measures sideways scrolling at 390 px on every page, and
// saves screenshots at 390 and 1280 px.  One JSON line on stdout:
//   {"event": "done", ...what it saw}  or  {"event": "error", "message"}.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const { axe, overflowAt, tabTo } = require('./a11y');

const cfg = JSON.parse(process.argv[2]);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// RFC 6238: the current 6-digit code of a base32 secret.
function totp(secret) {
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secret.replace(/=+$/, '')) bits += alpha.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  const mac = crypto.createHmac('sha1', key).update(msg).digest();
  const off = mac[19] & 15;
  return String((mac.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0');
}

(async () => {
  const out = { pages: {}, errors: [], dialogs: 0 };
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
      // A 4xx the test provokes
      // (the weak password's 400, the wrong ones' 401, the lock's 429) is
      // logged by Chromium as a failed resource, and the Trusted Types
      // probe below as a blocked assignment (a page's own would throw:
      // pageerror); anything else is an error.
      if (m.type() === 'error' && !/status of (400|401|429)/.test(m.text()) &&
          !/requires 'TrustedHTML' assignment/.test(m.text())) out.errors.push(m.text());
    });
    page.on('pageerror', (e) => out.errors.push(String(e)));
    page.on('dialog', (d) => { out.dialogs++; d.dismiss(); });

    // What every page must pass: axe-core, no sideways scroll at 390 px,
    // no markup made from data (no img/script inside main), screenshots.
    async function check(name) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.screenshot({ path: path.join(cfg.shots, `console_${name}_1280.png`), fullPage: true });
      const overflow = await overflowAt(page, 390);
      await page.screenshot({ path: path.join(cfg.shots, `console_${name}_390.png`), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
      const violations = await axe(page);
      const injected = await page.evaluate(() => document.querySelectorAll('main img, main script, main b, main iframe').length);
      out.pages[name] = { overflow, violations, injected, h1: await page.textContent('main h1') };
    }

    const resp = await page.goto(cfg.url, { waitUntil: 'load' });
    out.csp = resp.headers()['content-security-policy'] || '';
    await page.waitForSelector('#login-form');
    out.lang = await page.evaluate(() => document.documentElement.lang);
    out.loginLabels = await page.$$eval('#login-form label', (ls) => ls.filter((l) => !l.closest('[hidden]')).map((l) => l.textContent));
    out.loginButton = await page.textContent('#login-submit');
    await check('login');

    // Trusted Types: the page cannot turn a string into markup.
    out.trustedTypes = await page.evaluate(() => {
      try { document.createElement('div').innerHTML = '<b>x</b>'; return 'allowed'; } catch (e) { return 'blocked'; }
    });

    // Keyboard only: focus is on the h1; Tab to the login field, type,
    // Tab to the password, type, Enter.
    out.loginFocusStart = await page.evaluate(() => document.activeElement.tagName);
    out.tabsToLogin = await tabTo(page, 'login-id');
    await page.keyboard.type(cfg.login);
    await page.keyboard.press('Tab');
    out.passwordFocused = await page.evaluate(() => document.activeElement.id);
    await page.keyboard.type(cfg.password);
    await page.keyboard.press('Enter');

    // The forced change: a mismatch, a weak password, then a good one.
    await page.waitForSelector('#pw-form');
    out.pwLabels = await page.$$eval('#pw-form label', (ls) => ls.map((l) => l.textContent));
    out.pwButton = await page.textContent('#pw-submit');
    await check('password');
    await page.getByLabel('新しいパスワード', { exact: true }).fill(cfg.newPassword);
    await page.getByLabel('新しいパスワード（確認）').fill(cfg.newPassword + 'x');
    await page.getByRole('button', { name: '変更する' }).click();
    await page.waitForSelector('main .kn-error');
    out.mismatch = await page.textContent('main .kn-error');
    await page.getByLabel('新しいパスワード', { exact: true }).fill('short');
    await page.getByLabel('新しいパスワード（確認）').fill('short');
    await page.getByRole('button', { name: '変更する' }).click();
    await page.waitForFunction((m) => document.querySelector('main .kn-error').textContent !== m, out.mismatch);
    out.weak = await page.textContent('main .kn-error');
    await page.getByLabel('新しいパスワード', { exact: true }).fill(cfg.newPassword);
    await page.getByLabel('新しいパスワード（確認）').fill(cfg.newPassword);
    await page.getByRole('button', { name: '変更する' }).click();

    // ホーム: the two broadcasts, the sender's name and the rate filled in.
    await page.waitForSelector('#home-list tbody tr');
    await page.waitForFunction(() => document.querySelectorAll('#home-list tbody tr').length >= 2);
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#home-list .conf')).every((c) => c.textContent !== '…'));
    out.nav = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
    out.who = await page.textContent('#who');
    out.homeFocus = await page.evaluate(() => document.activeElement.tagName);
    out.home = await page.$$eval('#home-list tbody tr', (trs) => trs.map((tr) => ({
      name: tr.dataset.name, cells: Array.from(tr.cells).map((td) => td.textContent) })));
    // The subject filter (client side) keeps only the matching row.
    await page.fill('#home-q', '予定');
    out.filtered = await page.$$eval('#home-list tbody tr', (trs) => trs.map((tr) => tr.dataset.name));
    await page.fill('#home-q', '');
    // The date range goes to the server: up to yesterday (JST) finds none.
    const yesterday = new Date(Date.now() + 9 * 3600e3 - 86400e3).toISOString().slice(0, 10);
    await page.fill('#home-to', yesterday);
    await page.click('.search button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#home-list tbody tr').length === 0);
    out.beforeToday = await page.textContent('#home-count');
    await page.fill('#home-to', '');
    await page.click('.search button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#home-list tbody tr').length >= 2);
    await check('home');

    // 配信状況 of the ack broadcast: the numbers and the lists.
    await page.click(`#home-list tr[data-name="${cfg.ack}"] a`);
    await page.waitForSelector('#bc-delivered');
    await page.waitForSelector('#bc-unconfirmed');
    out.bcFocus = await page.evaluate(() => document.activeElement.tagName + ':' + document.activeElement.textContent);
    out.bc = await page.evaluate(() => ({
      delivered: document.getElementById('bc-delivered').textContent,
      confirmed: document.getElementById('bc-confirmed').textContent,
      subject: document.getElementById('bc-subject').textContent,
      unconfirmed: Array.from(document.querySelectorAll('#bc-unconfirmed tbody tr')).map((tr) => Array.from(tr.cells).map((c) => c.textContent)),
      unreached: Array.from(document.querySelectorAll('#bc-unreached tbody tr')).map((tr) => Array.from(tr.cells).map((c) => c.textContent)),
      tally: Array.from(document.querySelectorAll('#bc-tally li')).map((li) => li.textContent),
      comments: Array.from(document.querySelectorAll('#bc-comments tbody tr')).map((tr) => Array.from(tr.cells).map((c) => c.textContent)),
      confirmedList: Array.from(document.querySelectorAll('#bc-confirmed-list tbody tr')).map((tr) => Array.from(tr.cells).map((c) => c.textContent)),
      classes: Array.from(document.querySelectorAll('#bc-class-table tbody tr')).map((tr) => Array.from(tr.cells).map((c) => c.textContent)),
      csv: document.getElementById('bc-csv').getAttribute('href'),
      csvExcel: document.getElementById('bc-csv-excel').getAttribute('href'),
      bounced: (document.getElementById('bc-bounced') || {}).textContent || null,
      chHeads: Array.from(document.querySelectorAll('#bc-ch-table thead th')).map((th) => th.textContent),
      chRows: Array.from(document.querySelectorAll('#bc-ch-table tbody tr')).map((tr) => Array.from(tr.cells).map((c) => c.textContent)),
    }));
    // 電話番号を表示 on the not reached child with a phone: tel: links.
    const phoneRow = page.locator('#bc-unreached tbody tr', { hasText: '***4444' });
    out.phoneButton = await phoneRow.locator('button.phone-btn').textContent();
    await phoneRow.locator('button.phone-btn').click();
    await page.waitForSelector('#bc-unreached a[href^="tel:"]');
    out.phoneLinks = await page.$$eval('#bc-unreached a[href^="tel:"]', (as) => as.map((a) => [a.getAttribute('href'), a.textContent]));
    out.phoneFocus = await page.evaluate(() => document.activeElement.getAttribute('href'));
    await check('broadcast');
    await page.emulateMedia({ media: 'print' });
    out.printHidesActions = await page.isHidden('#bc-actions');
    await page.screenshot({ path: path.join(cfg.shots, 'console_broadcast_print.png'), fullPage: true });
    await page.emulateMedia({ media: 'screen' });

    // The CSV, as a download.
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#bc-csv')]);
    out.csvName = dl.suggestedFilename();
    out.csvText = fs.readFileSync(await dl.path(), 'utf8');

    // 未確認者に再送: the question, then the new broadcast's page.
    await page.click('#bc-resend');
    await page.waitForSelector('#bc-question');
    out.resendQuestion = await page.textContent('#bc-question');
    await page.click('#bc-yes');
    await page.waitForFunction((old) => location.hash.startsWith('#b/') && location.hash !== '#b/' + old, cfg.ack);
    out.resent = decodeURIComponent(await page.evaluate(() => location.hash.slice(3)));
    out.resentNotice = await page.textContent('#notice');
    await page.waitForSelector('#bc-delivered');

    // Cancel the scheduled one (the question first; "キャンセル" keeps it).
    await page.evaluate((n) => { location.hash = '#b/' + encodeURIComponent(n); }, cfg.scheduled);
    await page.waitForSelector('#bc-cancel');
    await page.click('#bc-cancel');
    await page.click('#bc-no');
    out.cancelKept = await page.isVisible('#bc-cancel');
    await page.click('#bc-cancel');
    await page.click('#bc-yes');
    await page.waitForFunction(() => !document.getElementById('bc-cancel'));
    out.cancelNotice = await page.textContent('#notice');
    out.cancelStatus = await page.textContent('#bc-head dl');

    // The language switch: English, kept in localStorage, then back.
    await page.selectOption('#lang', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    out.navEn = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
    out.langStored = await page.evaluate(() => localStorage.getItem('kairan.lang'));
    await page.selectOption('#lang', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');

    // Log out: the login form again, and the API says 401.
    await page.click('#logout');
    await page.waitForSelector('#login-form');
    out.afterLogout = await page.evaluate(async () => (await fetch('../../v1/session')).status);

    // An admin with TOTP: the code field appears when the server asks.
    out.totpHidden = await page.isHidden('#login-totp');
    await page.fill('#login-id', cfg.totpLogin);
    await page.fill('#login-pw', cfg.totpPassword);
    await page.click('#login-submit');
    await page.waitForSelector('#login-totp', { state: 'visible' });
    out.totpShown = await page.evaluate(() => document.activeElement.id === 'login-totp');
    out.totpAsk = await page.textContent('main .kn-error');
    await page.fill('#login-totp', totp(cfg.totpSecret));
    const totpDone = page.waitForResponse((r) => r.url().endsWith('/v1/session') && r.request().method() === 'POST');
    await page.click('#login-submit');
    out.totpStatus = (await totpDone).status();
    // (back on the page of the hash it logged out from)
    await page.waitForSelector('#nav a[data-page="home"]', { state: 'visible' });
    out.totpNav = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
    await page.click('#nav a[data-page="home"]');
    await page.waitForFunction(() => document.querySelectorAll('#home-list tbody tr').length > 0);
    const rowsNow = () => page.$$eval('#home-list tbody tr', (trs) => trs.length);
    out.paged = [await rowsNow(), await page.isVisible('#home-more')];
    await page.click('#home-more');
    await page.waitForFunction(() => document.querySelectorAll('#home-list tbody tr').length > 25);
    out.paged.push(await rowsNow(), await page.isVisible('#home-more'));
    await page.click('#logout');
    await page.waitForSelector('#login-form');

    // Five wrong passwords from this address lock the login here.
    const p2 = await ctx.newPage();
    p2.on('dialog', (d) => { out.dialogs++; d.dismiss(); });
    await p2.goto(cfg.url);
    out.lock = [];
    for (let i = 0; i < 6; i++) {
      await p2.fill('#login-id', cfg.lockLogin);
      await p2.fill('#login-pw', i < 5 ? 'wrong password ' + i : cfg.lockPassword);
      const done = p2.waitForResponse((r) => r.url().endsWith('/v1/session') && r.request().method() === 'POST');
      await p2.click('#login-submit');
      const r = await done;
      await p2.waitForFunction(() => !document.getElementById('login-submit').disabled);
      out.lock.push({ status: r.status(), text: await p2.textContent('main .kn-error') });
    }
    await p2.screenshot({ path: path.join(cfg.shots, 'console_locked_1280.png') });
    // A login that browsers never used for it have failed 10 times (the
    // test made that in Redis): even the right password is refused here,
    // and the page says what to do.
    {
      await p2.fill('#login-id', cfg.attackedLogin);
      await p2.fill('#login-pw', cfg.attackedPassword);
      const done = p2.waitForResponse((r) => r.url().endsWith('/v1/session') && r.request().method() === 'POST');
      await p2.click('#login-submit');
      const r = await done;
      await p2.waitForFunction(() => !document.getElementById('login-submit').disabled);
      out.attacked = { status: r.status(), text: await p2.textContent('main .kn-error') };
      await p2.screenshot({ path: path.join(cfg.shots, 'console_untrusted_locked_1280.png') });
    }
    // A session left open, its current password guessed at the password
    // form (after a reload the form asks for it): the 5th wrong one ends
    // the session, and the login page says why.
    if (cfg.stolenLogin) {
      const p3 = await ctx.newPage();
      p3.on('dialog', (d) => { out.dialogs++; d.dismiss(); });
      await p3.goto(cfg.url);
      await p3.waitForSelector('#login-id');
      await p3.fill('#login-id', cfg.stolenLogin);
      await p3.fill('#login-pw', cfg.stolenPassword);
      await p3.click('#login-submit');
      await p3.waitForSelector('#pw-new');
      await p3.reload({ waitUntil: 'load' });
      await p3.waitForSelector('#pw-current');
      out.stolen = [];
      for (let i = 0; i < 5; i++) {
        const nw = 'the new password of a thief ' + i;
        await p3.fill('#pw-current', 'a guess of the current one ' + i);
        await p3.fill('#pw-new', nw);
        await p3.fill('#pw-confirm', nw);
        const done = p3.waitForResponse((r) => r.url().endsWith('/v1/session/password'));
        await p3.click('#pw-submit');
        const r = await done;
        if (i < 4) {
          await p3.waitForFunction(() => !document.getElementById('pw-submit').disabled);
        } else {
          await p3.waitForSelector('#login-form');
        }
        out.stolen.push({ status: r.status(), text: await p3.textContent('main .kn-error') });
      }
      out.stolenAfter = await p3.evaluate(async () => {
        const r = await fetch('/v1/session', { credentials: 'same-origin' });
        let j = null;
        try { j = await r.json(); } catch (e) { j = null; }
        return { status: r.status, session: !!(j && j.session) };
      });
      await p3.screenshot({ path: path.join(cfg.shots, 'console_session_ended_1280.png'), fullPage: true });
      const overflow = await overflowAt(p3, 390);
      await p3.screenshot({ path: path.join(cfg.shots, 'console_session_ended_390.png'), fullPage: true });
      await p3.setViewportSize({ width: 1280, height: 900 });
      out.pages.session_ended = {
        overflow,
        violations: await axe(p3),
        injected: await p3.evaluate(() => document.querySelectorAll('main img, main script, main b, main iframe').length),
        h1: await p3.textContent('main h1'),
      };
      await p3.close();
    }
    out.xss = await page.evaluate(() => window.__kairan_xss === true);
    say(Object.assign({ event: 'done' }, out));
  } catch (e) {
    say({ event: 'error', message: String(e && e.stack || e), partial: out });
    process.exitCode = 1;
  } finally {
    await ctx.close();
  }
})();
