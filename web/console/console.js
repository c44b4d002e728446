// console.js - the core of kairan's staff console (issue 14): strings,
// the session (login, forced password change), the header and navigation,
// hash routing, and the small API every page file uses (global KN):
//
//   KN.page(name, render)   register a page; render(root, arg) fills an
//                           empty <main> for #name or #name/arg and may
//                           return a cleanup function (or a Promise of one).
//                           It must add the page's <h1> before returning.
//   KN.api(method, path, body, background) -> Promise {status, json};
//                           never rejects for an HTTP error, only for a
//                           network failure; background: a poll, not a
//                           person (the session's idle time runs on).
//   KN.t(key, vars)         the string of the current language.
//   KN.el(tag, attrs, ...children)  an element; strings become text.
//   KN.fmtDate(iso or ms)   JST "2026年12月5日(土) 6:05".
//   KN.me, KN.lang, KN.error(root, msg), KN.notice(msg), KN.go(hash),
//   KN.url(path)            an API path as a link (downloads).
//
// The CSP forbids inline script and, through Trusted Types, innerHTML and
// its kin: every node is built with createElement and textContent, so no
// value from the server or the user is ever parsed as markup.
'use strict';

(function () {
  const pages = {};
  const S = { strings: {}, fallback: {}, cleanup: null, started: false };
  // The console lives at <base>/c/<tenant>/: the API is at <base>/v1/.
  const m = /^(.*)\/c\/([^/]+)\/[^/]*$/.exec(location.pathname);
  const base = m ? m[1] : '';
  let tenant = '';
  try { tenant = m ? decodeURIComponent(m[2]) : ''; } catch (e) { tenant = ''; }
  const $ = (id) => document.getElementById(id);

  const KN = {
    me: null,
    lang: 'ja',
    tenant: tenant,
  };

  KN.url = (path) => base + path;

  KN.t = function (key, vars) {
    let s = S.strings[key];
    if (s === undefined) s = S.fallback[key];
    if (s === undefined) return key;
    if (vars) {
      s = s.replace(/\{([a-z_0-9]+)\}/g, (all, k) =>
        (Object.prototype.hasOwnProperty.call(vars, k) ? String(vars[k]) : all));
    }
    return s;
  };

  KN.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (k === 'for') e.htmlFor = v;
      else if (k.startsWith('aria-') || k.startsWith('data-') || k === 'role') e.setAttribute(k, v);
      else if (k in e) e[k] = v;
      else e.setAttribute(k, v);
    }
    const add = (c) => {
      if (c === undefined || c === null || c === false) return;
      if (Array.isArray(c)) c.forEach(add);
      else e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    };
    children.forEach(add);
    return e;
  };

  // JST whatever the browser's zone: shift by 9 h and read the UTC fields.
  KN.fmtDate = function (v) {
    if (v === undefined || v === null || v === '') return '';
    const ms = typeof v === 'number' ? v : Date.parse(v);
    if (!isFinite(ms)) return String(v);
    const d = new Date(ms + 9 * 3600 * 1000);
    const y = d.getUTCFullYear(), mo = d.getUTCMonth(), day = d.getUTCDate();
    const wd = KN.t('common.weekdays').split(',')[d.getUTCDay()];
    const hm = d.getUTCHours() + ':' + String(d.getUTCMinutes()).padStart(2, '0');
    if (KN.lang === 'ja') return `${y}年${mo + 1}月${day}日(${wd}) ${hm}`;
    const mon = 'Jan,Feb,Mar,Apr,May,Jun,Jul,Aug,Sep,Oct,Nov,Dec'.split(',')[mo];
    return `${wd} ${day} ${mon} ${y} ${hm}`;
  };

  // A notice stays over the next page (a re-send goes to the new
  // broadcast) and is cleared by a later navigation.
  KN.notice = function (msg) {
    const n = $('notice');
    n.textContent = '';
    n.appendChild(KN.el('p', null, msg));
    S.noticeAt = Date.now();
  };

  // An error: in the page (after its h1) when root is given, else at the
  // top; both are role=alert, so screen readers say it at once.
  KN.error = function (root, msg) {
    if (!root) {
      const a = $('alert');
      a.textContent = '';
      if (msg) a.appendChild(KN.el('p', null, msg));
      return;
    }
    let p = root.querySelector(':scope > .kn-error');
    if (!msg) { if (p) p.remove(); return; }
    // An earlier action's "saved" must not stand above this error.
    $('notice').textContent = '';
    if (!p) {
      p = KN.el('p', { class: 'kn-error', role: 'alert' });
      const h1 = root.querySelector('h1');
      if (h1 && h1.parentNode === root) h1.after(p); else root.prepend(p);
    }
    p.textContent = msg;
  };

  // The text of a failed answer, for KN.error.
  KN.failText = function (r) {
    if (r.status === 0) return KN.t('common.network');
    if (r.status === 403) return KN.t('common.forbidden') + (r.json && r.json.error ? ' (' + r.json.error + ')' : '');
    return KN.t('common.error_status', { status: r.status, error: (r.json && r.json.error) || '' });
  };

  KN.go = function (hash) {
    hash = hash.charAt(0) === '#' ? hash : '#' + hash;
    if (location.hash === hash) route(); else location.hash = hash;
  };

  KN.page = function (name, render) { pages[name] = render; };

  const csrf = {
    get: () => sessionStorage.getItem('kairan.csrf'),
    set: (v) => sessionStorage.setItem('kairan.csrf', v),
    clear: () => sessionStorage.removeItem('kairan.csrf'),
  };

  KN.api = async function (method, path, body, background) {
    const h = {};
    const opt = { method: method, credentials: 'same-origin', headers: h, cache: 'no-store' };
    // The page's own polling is no one's activity: it must not keep the
    // session from its 30-minute idle end (a console left open).
    if (background) h['X-Kairan-Background'] = '1';
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    if (method !== 'GET' && csrf.get()) h['X-CSRF-Token'] = csrf.get();
    let res = await fetch(base + path, opt);
    // A GET refused by the per-address rate (http.rate) is asked again
    // after Retry-After, a few times; a change never is.
    for (let i = 0; i < 3 && res.status === 429 && method === 'GET'; i++) {
      const wait = Math.min(5, parseInt(res.headers.get('Retry-After') || '1', 10) || 1);
      await new Promise((ok) => setTimeout(ok, wait * 1000));
      res = await fetch(base + path, opt);
    }
    let json = null;
    try { json = await res.json(); } catch (e) { json = null; }
    if (res.status === 401 && !(method === 'POST' && path === '/v1/session')) {
      showLogin(KN.t(json && json.code === 'session_ended' ? 'common.session_ended_pw' : 'common.session_needed'));
    }
    return { status: res.status, json: json };
  };

  // A failed fetch (network) as an answer with status 0.
  const call = (method, path, body) =>
    KN.api(method, path, body).catch(() => ({ status: 0, json: null }));

  // ------------------------------------------------------------ strings

  async function loadStrings(lang) {
    // A school's staff share one address: a busy moment may answer 429
    // (http.rate per address) or 503.  Wait as told and ask again, so
    // that the console never shows its keys instead of its words.
    const get = async (l) => {
      for (let attempt = 0; attempt < 6; attempt++) {
        try {
          const r = await fetch(`strings-${l}.json`, { cache: 'no-store' });
          if (r.ok) return await r.json();
          if (r.status !== 429 && r.status !== 503) return {};
          const wait = Math.min(Math.max(parseInt(r.headers.get('Retry-After'), 10) || 1, 1), 5);
          await new Promise((ok) => setTimeout(ok, wait * 1000));
        } catch (e) {
          await new Promise((ok) => setTimeout(ok, 500));
        }
      }
      return {};
    };
    S.fallback = S.fallback.__ja ? S.fallback : Object.assign(await get('ja'), { __ja: true });
    S.strings = lang === 'ja' ? S.fallback : await get(lang);
    KN.lang = lang;
    document.documentElement.lang = lang;
  }

  // -------------------------------------------------------- the shell

  function showShell(on) {
    $('nav').hidden = !on;
    $('logout').hidden = !on;
    $('who').textContent = on && KN.me ? `${KN.me.name || KN.me.login}（${KN.t('common.role.' + KN.me.role)}）` : '';
  }

  function drawHeader() {
    document.title = KN.t('common.title');
    $('skip').textContent = KN.t('common.skip');
    $('school').textContent = tenant;
    $('logout').textContent = KN.t('common.logout');
    $('lang').value = KN.lang;
    const nav = $('nav');
    nav.textContent = '';
    nav.setAttribute('aria-label', KN.t('common.nav'));
    const items = ['home', 'compose', 'roster'];
    if (KN.me && (KN.me.role === 'admin' || KN.me.role === 'limited_admin')) items.push('staff');
    const ul = KN.el('ul');
    for (const p of items) {
      ul.appendChild(KN.el('li', null, KN.el('a', { href: '#' + p, 'data-page': p }, KN.t('common.nav.' + p))));
    }
    nav.appendChild(ul);
    showShell(!!KN.me);
    markNav();
  }

  function markNav() {
    const cur = (location.hash.slice(1).split('/')[0]) || 'home';
    const page = cur === 'b' ? 'home' : cur;
    for (const a of $('nav').querySelectorAll('a')) {
      if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  // A fresh <main> for every page: nothing of the last one stays behind.
  function freshMain() {
    if (S.cleanup) { try { S.cleanup(); } catch (e) { /* ignore */ } S.cleanup = null; }
    const old = $('main');
    const main = KN.el('main', { id: 'main', tabindex: -1 });
    old.replaceWith(main);
    KN.error(null, '');
    if (Date.now() - (S.noticeAt || 0) > 3000) $('notice').textContent = '';
    return main;
  }

  function focusH1(main) {
    const h1 = main.querySelector('h1');
    if (!h1) return;
    h1.tabIndex = -1;
    h1.focus();
  }

  let routeGen = 0;
  function route() {
    if (!KN.me) return;
    markNav();
    const gen = ++routeGen;
    let hash = location.hash.slice(1);
    try { hash = decodeURIComponent(hash); } catch (e) { /* a malformed %: as it is */ }
    const slash = hash.indexOf('/');
    const name = (slash < 0 ? hash : hash.slice(0, slash)) || 'home';
    const arg = slash < 0 ? '' : hash.slice(slash + 1);
    const main = freshMain();
    const render = pages[name];
    if (!render) {
      const known = ['compose', 'roster', 'staff'].indexOf(name) >= 0;
      main.append(KN.el('h1', null, known ? KN.t('common.nav.' + name) : KN.t('common.not_found')),
        KN.el('p', null, known ? KN.t('common.soon') : KN.t('common.not_found_text')));
      focusH1(main);
      return;
    }
    let out;
    try { out = render(main, arg); } catch (e) { KN.error(main, String(e)); }
    focusH1(main);
    Promise.resolve(out).then((c) => {
      if (typeof c !== 'function') return;
      if (gen === routeGen) S.cleanup = c; else c();
    }, (e) => KN.error(main, String(e)));
  }

  // ------------------------------------------------------------ login

  function field(id, label, attrs, hint) {
    const input = KN.el('input', Object.assign({ id: id, name: id }, attrs,
      hint ? { 'aria-describedby': id + '-hint' } : {}));
    return KN.el('p', { class: 'field' }, KN.el('label', { for: id }, label),
      hint ? KN.el('span', { id: id + '-hint', class: 'hint' }, hint) : null, input);
  }

  function showLogin(msg) {
    KN.me = null;
    routeGen++;
    showShell(false);
    const main = freshMain();
    const form = KN.el('form', { id: 'login-form', class: 'card', novalidate: true });
    const totp = field('login-totp', KN.t('login.totp'),
      { type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', maxLength: 6 },
      KN.t('login.totp_hint'));
    totp.hidden = true;
    const btn = KN.el('button', { type: 'submit', id: 'login-submit' }, KN.t('login.submit'));
    form.append(
      field('login-id', KN.t('login.id'), { type: 'text', autocomplete: 'username', autocapitalize: 'none', spellcheck: false, required: true }),
      field('login-pw', KN.t('login.password'), { type: 'password', autocomplete: 'current-password', required: true }),
      totp, KN.el('p', null, btn));
    main.append(KN.el('h1', null, KN.t('login.title')),
      KN.el('p', { class: 'muted' }, KN.t('login.school', { tenant: tenant })), form);
    if (msg) KN.error(main, msg);
    focusH1(main);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const login = form.querySelector('#login-id').value.trim();
      const password = form.querySelector('#login-pw').value;
      const code = form.querySelector('#login-totp').value.trim();
      if (!login || !password) { KN.error(main, KN.t('login.need')); return; }
      const body = { tenant: tenant, login: login, password: password };
      if (!totp.hidden && code) body.totp = code;
      btn.disabled = true;
      btn.textContent = KN.t('login.busy');
      const r = await call('POST', '/v1/session', body);
      btn.disabled = false;
      btn.textContent = KN.t('login.submit');
      if (r.status === 200 && r.json) {
        csrf.set(r.json.csrf);
        if (r.json.must_change_password) { showPassword(password); return; }
        if (r.json.totp_required) { KN.error(main, KN.t('login.totp_setup')); return; }
        await start();
        return;
      }
      const f = r.json && r.json.field;
      const err = (r.json && r.json.error) || '';
      const errCode = r.json && r.json.code;
      if (r.status === 401 && f === 'totp') {
        const first = totp.hidden;
        totp.hidden = false;
        form.querySelector('#login-totp').focus();
        KN.error(main, first ? KN.t('login.totp_hint') : KN.t('login.totp_wrong'));
      } else if (r.status === 401) KN.error(main, KN.t('login.bad'));
      // 429: which lock, by its code (the error text is English for the
      // API); the untrusted-browser lock says how long is left.
      else if (r.status === 429 && errCode === 'untrusted_locked') {
        const s = parseInt(r.json.retry_after, 10) || 900;
        KN.error(main, KN.t('login.untrusted_locked', { minutes: Math.max(1, Math.ceil(s / 60)) }));
      } else if (r.status === 429 && f === 'totp') KN.error(main, KN.t('login.totp_locked'));
      else if (r.status === 429 && (errCode === 'address_locked' || /failed/.test(err))) KN.error(main, KN.t('login.locked'));
      else if (r.status === 429 || r.status === 503) KN.error(main, KN.t('login.busy_server'));
      else if (r.status === 503) KN.error(main, KN.t('login.busy_server'));
      else if (r.status === 403 && /closed/.test(err)) KN.error(main, KN.t('login.closed'));
      else if (r.status === 403 && /origin/.test(err)) KN.error(main, KN.t('login.origin'));
      else if (r.status === 400 && f === 'tenant') KN.error(main, KN.t('login.bad_tenant'));
      else KN.error(main, KN.failText(r));
    });
  }

  // The server's reason for refusing a new password, in the user's language.
  function pwReason(r) {
    const e = (r.json && r.json.error) || '';
    const rules = [[/too short/, 'pw.short'], [/too long/, 'pw.long'], [/control char|UTF-8/, 'pw.chars'],
      [/not be the login/, 'pw.login'], [/common/, 'pw.common'], [/must differ/, 'pw.same'],
      [/current password is wrong/, 'pw.current_wrong']];
    for (const [re, key] of rules) if (re.test(e)) return KN.t(key);
    return KN.failText(r);
  }

  // The forced change of the initial password.  current: the password
  // just typed at login (kept only here), or null after a reload.
  function showPassword(current) {
    showShell(false);
    const main = freshMain();
    const form = KN.el('form', { id: 'pw-form', class: 'card', novalidate: true });
    const cur = current ? null : field('pw-current', KN.t('pw.current'), { type: 'password', autocomplete: 'current-password' });
    const btn = KN.el('button', { type: 'submit', id: 'pw-submit' }, KN.t('pw.submit'));
    form.append(cur || '',
      field('pw-new', KN.t('pw.new'), { type: 'password', autocomplete: 'new-password' }),
      field('pw-confirm', KN.t('pw.confirm'), { type: 'password', autocomplete: 'new-password' }),
      KN.el('p', null, btn));
    main.append(KN.el('h1', null, KN.t('pw.title')), KN.el('p', null, KN.t('pw.intro')), form);
    focusH1(main);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const nw = form.querySelector('#pw-new').value;
      if (nw !== form.querySelector('#pw-confirm').value) { KN.error(main, KN.t('pw.mismatch')); return; }
      btn.disabled = true;
      const r = await call('POST', '/v1/session/password',
        { current: cur ? form.querySelector('#pw-current').value : current, new: nw });
      btn.disabled = false;
      if (r.status === 200 && r.json) {
        csrf.set(r.json.csrf);
        current = null;
        KN.notice(KN.t('pw.done'));
        await start();
        return;
      }
      KN.error(main, pwReason(r));
    });
  }

  // ------------------------------------------------------------ start

  // Who is logged in (GET /v1/session); then the page of the hash.
  async function start() {
    const r = await call('GET', '/v1/session');
    if (r.status === 0) { freshMain().append(KN.el('h1', null, KN.t('common.title'))); KN.error(null, KN.t('common.network')); return; }
    if (r.status !== 200 || !r.json || !r.json.session) { showLogin(); return; }
    // The CSRF token lives in this tab only: a new tab logs in again.
    if (!csrf.get()) { showLogin(); return; }
    if (r.json.must_change_password) { KN.me = null; showPassword(null); return; }
    KN.me = { tenant: r.json.tenant, login: r.json.login, name: r.json.name, role: r.json.role };
    drawHeader();
    route();
  }

  async function logout() {
    await call('DELETE', '/v1/session');
    csrf.clear();
    showLogin();
    KN.notice(KN.t('common.logged_out'));
  }

  async function boot() {
    let lang = 'ja';
    try { lang = localStorage.getItem('kairan.lang') === 'en' ? 'en' : 'ja'; } catch (e) { /* private mode */ }
    await loadStrings(lang);
    drawHeader();
    $('skip').addEventListener('click', (ev) => {
      ev.preventDefault();
      focusH1($('main'));
    });
    $('logout').addEventListener('click', logout);
    $('lang').addEventListener('change', async () => {
      const l = $('lang').value === 'en' ? 'en' : 'ja';
      try { localStorage.setItem('kairan.lang', l); } catch (e) { /* private mode */ }
      await loadStrings(l);
      drawHeader();
      if (KN.me) route(); else await start();
    });
    window.addEventListener('hashchange', route);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(tenant)) {
      freshMain().append(KN.el('h1', null, KN.t('common.title')));
      KN.error(null, KN.t('login.bad_tenant'));
      return;
    }
    await start();
  }

  window.KN = KN;
  document.addEventListener('DOMContentLoaded', boot);
})();
