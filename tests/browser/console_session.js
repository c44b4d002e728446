// console_session.js - what a console page driver does before its own
// steps: start Debian's headless Chromium with a fresh profile, and log a
// staff account in with its initial password, changing it (the console
// asks for that first), all with the keyboard.
'use strict';
const { chromium } = require('playwright-core');
const { tabTo } = require('./a11y');

/* A persistent context on profile, viewport width x 844 (or 900). */
function launch(profile, width) {
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width, height: width < 600 ? 844 : 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/* Open url, log in, set newPassword; resolves once the navigation shows. */
async function loginChangingPassword(page, url, login, password, newPassword) {
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#login-id');
  await tabTo(page, 'login-id');
  await page.keyboard.type(login);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#pw-new', { timeout: 15000 });
  await page.focus('#pw-new');
  await page.keyboard.type(newPassword);
  await page.keyboard.press('Tab');
  await page.keyboard.type(newPassword);
  await page.keyboard.press('Enter');
  await page.waitForSelector('nav a[data-page="compose"]', { state: 'attached', timeout: 15000 });
}

module.exports = { launch, loginChangingPassword };
