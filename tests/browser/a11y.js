// a11y.js - what every page test checks besides its own behaviour:
// axe-core's WCAG 2.1 A/AA rules, no sideways scrolling on a 390 px phone,
// and reaching a control with the keyboard alone.
//
// axe-core is run through page.evaluate (the DevTools protocol), which the
// page's strict Content-Security-Policy does not govern: nothing is added
// to the page, so the CSP under test stays the page's own.
'use strict';
const fs = require('fs');

const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/* axe-core's violations of WCAG 2.1 A and AA, as short plain objects. */
async function axe(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
    }));
  });
}

/* Resize to width x 844 and return how many pixels the page overflows
 * sideways (0 when it fits). */
async function overflowAt(page, width) {
  await page.setViewportSize({ width, height: 844 });
  await page.waitForFunction((w) => window.innerWidth === w, width);
  return page.evaluate(() => Math.max(0,
    document.documentElement.scrollWidth - document.documentElement.clientWidth));
}

/* Press Tab until the element with this id has the focus (at most
 * `limit` presses); returns how many presses it took, or -1. */
async function tabTo(page, id, limit = 30) {
  for (let i = 1; i <= limit; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((x) => document.activeElement && document.activeElement.id === x, id))
      return i;
  }
  return -1;
}

module.exports = { axe, overflowAt, tabTo };
