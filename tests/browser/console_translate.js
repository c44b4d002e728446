// console_translate.js - drives Debian's /usr/bin/chromium (headless) through
// the console's 新規連絡 page at 390 px with a translation, for
// tests/integration/test_console_translate_page.py (issue 16, "Languages").
//
//   node console_translate.js URL LOGIN PASSWORD NEW_PASSWORD SHOT_DIR PROFILE
//
// A sender logs in and changes its initial password, opens 新規連絡, types
// the Japanese subject and body, ticks its group, presses 翻訳を追加 (the
// language list starts at English), types the English subject and body,
// adds a second translation and removes it again, goes to 確認画面へ (the
// summary names the translation), shows the preview in English and in
// Japanese again (the preview's language buttons) and 送信する.  Everything with the
// keyboard (Tab, Space, Enter, typing) on a 390 px wide page; axe-core on
// the form with the translation and on the confirmation; screenshots go to
// SHOT_DIR.
//
// Output: one JSON line {"event":"done", ...} (exit 0) or
// {"event":"error","message":...} (exit 1).
'use strict';
const path = require('path');
const { axe, overflowAt, tabTo } = require('./a11y');
const { launch, loginChangingPassword } = require('./console_session');

const [url, login, password, newPassword, shotDir, profile] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

(async () => {
  const errors = [];
  const ctx = await launch(profile, 390);
  const out = { event: 'done', axe: {}, overflow: {}, shots: [] };
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('dialog', (d) => d.dismiss());
    const check = async (name) => {
      const v = await axe(page);
      out.axe[name] = v.filter((x) => x.impact === 'serious' || x.impact === 'critical');
      out.overflow[name] = await overflowAt(page, 390);
      const f = path.join(shotDir, `console_translate_${name}_390.png`);
      await page.screenshot({ path: f, fullPage: true });
      out.shots.push(f);
    };

    // ---- log in and change the initial password (keyboard)
    await loginChangingPassword(page, url, login, password, newPassword);
    await page.evaluate(() => { location.hash = '#compose'; });
    await page.waitForSelector('#c-subject');
    await page.waitForSelector('#c-groups input[type=checkbox]', { timeout: 10000 });

    // ---- the Japanese text, then 翻訳を追加 (Tab from the body)
    await page.focus('#c-subject');
    await page.keyboard.type('【お知らせ】運動会の延期');
    await page.keyboard.press('Tab');
    await page.keyboard.type('保護者各位\n運動会は雨のため延期します。');
    out.tr_add_label = await page.textContent('#c-tr-add');
    out.tabs_to_add = await tabTo(page, 'c-tr-add', 10);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#c-tr-lang-0');
    out.focus_after_add = await page.evaluate(() => document.activeElement.id);
    out.lang_options = await page.$$eval('#c-tr-lang-0 option', (os) => os.map((o) => o.textContent));
    out.lang_default = await page.$eval('#c-tr-lang-0', (s) => s.value);
    out.lang_label = await page.textContent('label[for="c-tr-lang-0"]');
    await page.keyboard.press('Tab'); // the code field is hidden: the subject
    await page.keyboard.type('Sports day postponed');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Dear parents,\nSports day is postponed because of the rain.');
    // a second one, a code typed by hand, then removed
    await page.focus('#c-tr-add');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#c-tr-lang-1');
    await page.selectOption('#c-tr-lang-1', '');
    out.code_shown = await page.isVisible('#c-tr-code-1');
    await check('form');
    await page.focus('#c-tr-remove-1');
    await page.keyboard.press('Enter');
    out.removed = (await page.$('#c-tr-box-1')) === null;
    out.focus_after_remove = await page.evaluate(() => document.activeElement.id);
    await page.getByLabel('2年A組', { exact: true }).focus();
    await page.keyboard.press('Space');

    // ---- 確認画面へ, 送信する
    await page.focus('#c-confirm');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#c-confirm-step:not([hidden]) #c-send', { timeout: 15000 });
    out.summary = await page.$$eval('#c-summary tr', (rs) => rs.map((r) => r.textContent));
    await check('confirm');
    // ---- the preview as the English readers get it, then Japanese again
    out.pv_langs = await page.$$eval('#c-pv-langs button', (bs) => bs.map((b) => [b.textContent, b.getAttribute('aria-pressed')]));
    await page.focus('#c-pv-lang-en');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#c-pv-lang-en[aria-pressed="true"]', { timeout: 15000 });
    out.pv_en_subject = await page.textContent('#c-pv-email .mail-subject');
    out.pv_en_focus = await page.evaluate(() => document.activeElement.id);
    await check('preview_en');
    // the same at 1280 px (a desk's screen): nothing sideways either
    out.overflow.preview_en_1280 = await overflowAt(page, 1280);
    const wide = path.join(shotDir, 'console_translate_preview_en_1280.png');
    await page.screenshot({ path: wide, fullPage: true });
    out.shots.push(wide);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.focus('#c-pv-lang-en');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#c-pv-lang-ja[aria-pressed="true"]', { timeout: 15000 });
    out.pv_ja_subject = await page.textContent('#c-pv-email .mail-subject');
    await page.focus('#c-send');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /^#b\//.test(location.hash), null, { timeout: 15000 });
    out.hash = await page.evaluate(() => location.hash);
    out.errors = errors;
    say(out);
    await ctx.close();
    process.exit(0);
  } catch (e) {
    say({ event: 'error', message: String(e && e.stack || e), partial: out, errors: errors });
    await ctx.close().catch(() => {});
    process.exit(1);
  }
})();
