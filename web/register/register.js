// register.js - the registration page's steps (web/register/index.html):
// ID and passcode -> e-mail, name, relation, consent -> the code from the
// mail; or, opened from the mail's link (/r#v=<token>), one button that
// confirms.  Talks to POST /r/start, /r/email, /r/verify
// (dispatcher/http/register.c).
//
// The page runs under Trusted Types with no policy: text is only ever
// set with textContent, never as markup.  The link's token is in the
// fragment, which browsers never send to a server or a proxy log.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { ticket: null, lang: 'ja', s: {}, langs: [] };
  let asked = 0; // the latest loadStrings
  const sections = ['s-start', 's-contact', 's-code', 's-verify', 's-done'];

  function t(key, vars) {
    let s = state.s[key] || key;
    for (const k in vars || {}) s = s.split('{' + k + '}').join(String(vars[k]));
    return s;
  }

  function say(text, isError) {
    const m = $('msg');
    m.textContent = text || '';
    m.className = isError ? 'msg err' : 'msg';
    m.setAttribute('role', isError ? 'alert' : 'status');
  }

  function show(id) {
    for (const s of sections) $(s).hidden = s !== id;
    const h = $(id).querySelector('h2');
    if (h) h.focus();
  }

  /* The page in one language: its strings file's texts, and the html
   * lang its "htmlLang" names (a script subtag where one is needed:
   * "zh-Hans"), else the code.  A file that cannot be had leaves the
   * page as it was (the page's own Japanese at first). */
  async function loadStrings(lang) {
    const mine = ++asked;
    let s = null;
    try {
      const r = await fetch('/r/strings-' + lang + '.json', { credentials: 'omit' });
      if (r.ok) s = await r.json();
    } catch (e) { /* unchanged */ }
    // an earlier choice answered late loses (the list changes language on
    // each arrow key): the page's language is what the sign-up stores
    if (mine !== asked) return;
    if (s !== null) {
      state.s = s;
      state.lang = lang;
    }
    document.documentElement.lang = state.s.htmlLang || state.lang;
    for (const el of document.querySelectorAll('[data-s]')) {
      const v = state.s[el.dataset.s];
      if (typeof v === 'string') el.textContent = v;
    }
    if ($('lang').tagName === 'BUTTON') {
      $('lang').lang = state.lang === 'ja' ? 'en' : 'ja';
    } else {
      $('lang').value = state.lang;
      if (state.s.langPick) $('lang').setAttribute('aria-label', state.s.langPick);
    }
    document.title = t('title');
  }

  /* The languages of the page: one per strings file the server has
   * (GET /r/langs.json).  Two: the button switches between them; more:
   * the button becomes a list (each language named in itself, its
   * "lang" the tag of its strings file). */
  async function loadLangs() {
    let langs = [{ code: 'ja', name: '日本語' }, { code: 'en', name: 'English' }];
    try {
      const r = await fetch('/r/langs.json', { credentials: 'omit' });
      if (r.ok) langs = await r.json();
    } catch (e) { /* the two that ship */ }
    state.langs = langs;
    if (langs.length <= 2) return;
    const sel = document.createElement('select');
    sel.id = 'lang';
    sel.setAttribute('aria-label', '言語 (Language)');
    for (const l of langs) {
      const o = document.createElement('option');
      o.value = l.code;
      o.lang = l.lang || l.code;
      o.textContent = l.name;
      sel.appendChild(o);
    }
    $('lang').replaceWith(sel);
  }

  function otherLang() {
    const l = state.langs.find((x) => x.code !== state.lang);
    return l ? l.code : 'ja';
  }

  async function post(path, body) {
    let r;
    try {
      r = await fetch(path, {
        method: 'POST', credentials: 'omit',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (e) {
      return { status: 0, json: { error: t('network') } };
    }
    let json = {};
    try { json = await r.json(); } catch (e) { /* empty */ }
    return { status: r.status, json };
  }

  // The server's words for a failure in the page's language: by its
  // "code" (strings "e_<code>", which may name the place of a refused
  // character: {at}, {excerpt}), else its own text (Japanese and English).
  function errText(res) {
    const c = res.json.code;
    if (typeof c === 'string' && state.s['e_' + c]) {
      return t('e_' + c, { at: res.json.at || '', excerpt: res.json.excerpt || '' });
    }
    return res.json.error || t('network');
  }

  function fail(res, focusId) {
    say(errText(res), true);
    const f = res.json.field && $(res.json.field === 'v' ? 'verify' : res.json.field);
    const el = f || (focusId && $(focusId));
    if (el) el.focus();
  }

  function busy(form, on) {
    for (const b of form.querySelectorAll('button')) b.disabled = on;
  }

  async function onStart(ev) {
    ev.preventDefault();
    const id = $('id').value.trim(), pass = $('passcode').value.trim();
    if (!id || !pass) { say(t('needId'), true); $(id ? 'passcode' : 'id').focus(); return; }
    busy(ev.target, true);
    say(t('sending'));
    const res = await post('/r/start', { id, passcode: pass });
    busy(ev.target, false);
    if (res.status !== 200) { fail(res, 'passcode'); return; }
    state.ticket = res.json.ticket;
    $('passcode').value = '';
    $('who').textContent = t('who', { school: res.json.school, student: res.json.student || '' }) +
      ' ' + t('left', { left: res.json.left });
    say('');
    show('s-contact');
  }

  async function onEmail(ev) {
    ev.preventDefault();
    const email = $('email').value.trim();
    if (!email) { say(t('needEmail'), true); $('email').focus(); return; }
    if (!$('consent').checked) { say(t('needConsent'), true); $('consent').focus(); return; }
    busy(ev.target, true);
    say(t('sending'));
    const res = await post('/r/email', {
      ticket: state.ticket, email, name: $('name').value.trim(),
      relation: $('relation').value.trim(), consent: true, lang: state.lang,
    });
    busy(ev.target, false);
    if (res.status !== 202) { fail(res, 'email'); return; }
    $('sent-to').textContent = res.json.sent || '';
    say('');
    show('s-code');
  }

  async function onCode(ev) {
    ev.preventDefault();
    const code = $('code').value.replace(/\s/g, '');
    if (!/^[0-9]{6}$/.test(code)) { say(t('needCode'), true); $('code').focus(); return; }
    busy(ev.target, true);
    const res = await post('/r/verify', { ticket: state.ticket, code });
    busy(ev.target, false);
    if (res.status !== 200) { fail(res, 'code'); return; }
    say(res.json.already ? t('already') : '');
    show('s-done');
  }

  async function onVerify() {
    const v = new URLSearchParams(location.hash.slice(1)).get('v') || '';
    $('verify').disabled = true;
    const res = await post('/r/verify', { v });
    $('verify').disabled = false;
    if (res.status !== 200) { fail(res, 'verify'); return; }
    history.replaceState(null, '', '/r');
    say(res.json.already ? t('already') : '');
    show('s-done');
  }

  async function onApp() {
    $('app').disabled = true;
    const res = await post('/r/app', { ticket: state.ticket, lang: state.lang });
    $('app').disabled = false;
    if (res.status !== 200) { fail(res, 'app'); return; }
    $('app-code').textContent = res.json.code;
    $('app-info').hidden = false;
    $('app').setAttribute('aria-expanded', 'true');
    say('');
  }

  async function onLine() {
    if (!$('consent').checked) { say(t('needConsent'), true); $('consent').focus(); return; }
    $('line').disabled = true;
    const res = await post('/r/line', { ticket: state.ticket, consent: true, lang: state.lang });
    $('line').disabled = false;
    if (res.status !== 200) { fail(res, 'line'); return; }
    const url = res.json.add_friend_url;
    $('line-friend').hidden = !url;
    $('line-nofriend').hidden = !!url;
    if (url) {
      $('line-link').href = url;
      $('line-qr').src = res.json.qr;
      $('line-qr').alt = t('lineQr');
    }
    $('line-code').textContent = res.json.code;
    $('line-info').hidden = false;
    $('line').setAttribute('aria-expanded', 'true');
    say('');
  }

  document.addEventListener('DOMContentLoaded', async () => {
    const q = new URLSearchParams(location.search);
    await loadLangs();
    const known = (l) => state.langs.some((x) => x.code === l);
    let lang = known(q.get('lang')) ? q.get('lang') : null;
    try { lang = lang || localStorage.getItem('kairan-lang'); } catch (e) { /* private mode */ }
    await loadStrings(known(lang) ? lang : 'ja');
    const pick = async (next) => {
      try { localStorage.setItem('kairan-lang', next); } catch (e) { /* private mode */ }
      await loadStrings(next);
    };
    if ($('lang').tagName === 'BUTTON') $('lang').addEventListener('click', () => pick(otherLang()));
    else $('lang').addEventListener('change', () => pick($('lang').value));
    $('f-start').addEventListener('submit', onStart);
    $('f-email').addEventListener('submit', onEmail);
    $('f-code').addEventListener('submit', onCode);
    $('verify').addEventListener('click', onVerify);
    $('line').setAttribute('aria-expanded', 'false');
    $('line').setAttribute('aria-controls', 'line-info');
    $('line').addEventListener('click', onLine);
    $('app').setAttribute('aria-expanded', 'false');
    $('app').setAttribute('aria-controls', 'app-info');
    $('app').addEventListener('click', onApp);
    if (q.get('id')) $('id').value = q.get('id');
    // A link opened again in the same tab changes only the fragment.
    window.addEventListener('hashchange', () => {
      if (/(^|&)v=/.test(location.hash.slice(1))) { say(''); show('s-verify'); }
    });
    if (/(^|&)v=/.test(location.hash.slice(1))) show('s-verify');
    else if (q.get('id')) $('passcode').focus();
  });
})();
