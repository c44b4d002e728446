// mypage.js - the guardian's own page (web/mypage/index.html), opened from
// the link at the foot of every mail (/m#t=<token>): channels and their
// order, stopped channels, the language (言語), the categories, the
// messages of the last 30 days; without a valid link, the "send me my
// link" form.  Talks to POST /m/view, /m/save, /m/code, /m/link
// (dispatcher/http/mypage.c).
//
// It speaks the guardian's language ("pf"."lg": ja en pt zh vi fil, one
// strings file each), English for one without a strings file; the list
// 表示言語 / Display language in the header switches it.
//
// The page runs under Trusted Types with no policy: text is only ever
// set with textContent, never as markup.  The token is in the fragment,
// which browsers never send to a server or a proxy log; it is sent only
// in request bodies.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { t: null, lang: 'ja', s: {}, view: null, order: [], stopped: new Set(), off: new Set(), needCode: false };

  // The html lang of a language code: kairan's "zh" is Simplified Chinese.
  const htmlLang = (l) => (l === 'zh' ? 'zh-Hans' : l);
  let asked = 0; // the latest loadStrings: an earlier answer arriving late loses

  function t(key, vars) {
    let s = state.s[key] || key;
    for (const k in vars || {}) s = s.split('{' + k + '}').join(String(vars[k]));
    return s;
  }

  // The server's words for a failure in the page's language: by its
  // "code" (strings "e_<code>"), else its own text (Japanese and English).
  function errText(res) {
    const c = res.json.code;
    return (typeof c === 'string' && state.s['e_' + c]) || res.json.error || t('network');
  }

  function say(text, isError) {
    const m = $('msg');
    m.textContent = text || '';
    m.className = isError ? 'msg err' : 'msg';
    m.setAttribute('role', isError ? 'alert' : 'status');
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function loadStrings(lang) {
    const mine = ++asked;
    let s = null;
    try {
      const r = await fetch('/m/strings-' + lang + '.json', { credentials: 'omit' });
      if (r.ok) s = await r.json();
    } catch (e) { /* keep what is shown */ }
    if (mine !== asked) return undefined;
    if (!s) {
      // a language the page has no strings file for: the English page
      if (lang !== 'en' && lang !== 'ja') return loadStrings('en');
      $('uilang').value = state.lang; // nothing loaded: the list names what is shown
      return undefined;
    }
    // The message shown (an expired link, "Saved.") follows the page into
    // the new language when it is one of the strings as written.
    const shown = $('msg').textContent;
    const said = shown ? Object.keys(state.s).find((k) => state.s[k] === shown) : undefined;
    state.s = s;
    state.lang = lang;
    document.documentElement.lang = htmlLang(lang);
    if (said && typeof s[said] === 'string') $('msg').textContent = s[said];
    for (const e of document.querySelectorAll('[data-s]')) {
      const v = state.s[e.dataset.s];
      if (typeof v === 'string') e.textContent = v;
    }
    $('uilang').value = lang;
    document.title = t('title');
    if (state.view) render();
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

  function showLinkForm(why) {
    $('s-main').hidden = true;
    $('s-msgs').hidden = true;
    $('s-link').hidden = false;
    say(why || '', !!why);
    $('h-link').focus();
  }

  function chName(ch) { return t('ch_' + ch); }

  function catName(name) {
    const k = 'cat_' + name;
    return state.s[k] || name;
  }

  function renderChannels() {
    const ul = $('channels');
    ul.replaceChildren();
    const byName = {};
    for (const c of state.view.channels) byName[c.channel] = c;
    state.order.forEach((ch, i) => {
      const c = byName[ch];
      const li = el('li');
      if (state.stopped.has(ch)) li.className = 'stopped';
      const row = el('div', { class: 'row' });
      const what = el('div', { class: 'what' });
      what.append(el('span', {}, (i + 1) + '. ' + chName(ch)));
      const detail = ch === 'push' ? t('devices', { n: c.devices || 0 }) : (c.address || '');
      what.append(el('small', {}, detail));
      const up = el('button', { type: 'button', class: 'move', 'aria-label': t('up', { ch: chName(ch) }) }, '↑');
      const down = el('button', { type: 'button', class: 'move', 'aria-label': t('down', { ch: chName(ch) }) }, '↓');
      up.disabled = i === 0;
      down.disabled = i === state.order.length - 1;
      up.addEventListener('click', () => move(i, -1, 'up'));
      down.addEventListener('click', () => move(i, 1, 'down'));
      up.dataset.ch = ch;
      down.dataset.ch = ch;
      row.append(what, up, down);
      li.append(row);
      const id = 'stop-' + ch;
      const box = el('div', { class: 'check' });
      const cb = el('input', { type: 'checkbox', id });
      cb.checked = state.stopped.has(ch);
      cb.addEventListener('change', () => {
        if (cb.checked) state.stopped.add(ch); else state.stopped.delete(ch);
        li.className = cb.checked ? 'stopped' : '';
      });
      box.append(cb, el('label', { for: id }, t('stop')));
      li.append(box);
      ul.append(li);
    });
  }

  function move(i, by, dir) {
    const j = i + by;
    if (j < 0 || j >= state.order.length) return;
    const o = state.order;
    [o[i], o[j]] = [o[j], o[i]];
    const ch = o[j];
    renderChannels();
    // Keep the focus on the moved channel's button (keyboard users).
    const again = $('channels').querySelector('button.move[data-ch="' + ch + '"]' + (dir === 'up' ? ':first-of-type' : ':last-of-type'));
    const target = again && !again.disabled ? again : $('channels').querySelector('button.move[data-ch="' + ch + '"]:not(:disabled)');
    if (target) target.focus();
    say(t('moved', { ch: chName(ch), n: j + 1 }));
  }

  function renderCats() {
    const box = $('cats');
    box.replaceChildren();
    state.view.categories.forEach((c, i) => {
      const id = 'cat-' + i;
      const d = el('div', { class: 'check' });
      const cb = el('input', { type: 'checkbox', id });
      cb.dataset.name = c.name;
      // the guardian's choice as it stands (state.off), not the page's
      // first answer: the page is drawn again when its language changes
      cb.checked = c.emergency || !state.off.has(c.name);
      cb.addEventListener('change', () => {
        if (cb.checked) state.off.delete(c.name); else state.off.add(c.name);
      });
      if (c.emergency) {
        cb.disabled = true;
        cb.setAttribute('aria-describedby', 'urgent-' + i);
      }
      d.append(cb, el('label', { for: id }, catName(c.name)));
      if (c.emergency) d.append(el('span', { id: 'urgent-' + i, class: 'hint' }, t('locked')));
      box.append(d);
    });
  }

  function renderLangs() {
    const sel = $('lg');
    const cur = sel.value || state.view.language;
    sel.replaceChildren();
    for (const l of state.view.languages) {
      const o = el('option', { value: l, lang: htmlLang(l) }, state.s['lang_' + l] || l);
      sel.append(o);
    }
    sel.value = state.view.languages.includes(cur) ? cur : 'ja';
  }

  function renderMsgs() {
    const ul = $('msgs');
    ul.replaceChildren();
    const list = state.view.messages || [];
    $('nomsgs').hidden = list.length > 0;
    const fmt = new Intl.DateTimeFormat(htmlLang(state.lang), { dateStyle: 'medium', timeStyle: 'short', timeZone: 'Asia/Tokyo' });
    for (const m of list) {
      const li = el('li');
      const det = el('details');
      const sum = el('summary');
      sum.append(el('span', { class: 'date' }, fmt.format(new Date(m.created_ms))),
        el('span', {}, m.subject || ''), el('span', { class: 'cat' }, ' [' + catName(m.category || '') + ']'));
      det.append(sum, el('pre', { class: 'body' }, m.body || ''));
      li.append(det);
      ul.append(li);
    }
  }

  function renderVia() {
    const sel = $('via');
    sel.replaceChildren();
    for (const c of state.view.contacts) {
      sel.append(el('option', { value: c.via }, chName(c.via) + ': ' + c.address));
    }
    $('sendcode').disabled = state.view.contacts.length === 0;
    $('passbox').hidden = !state.view.passcode;
  }

  function render() {
    const v = state.view;
    $('who').textContent = t('who', { school: v.school, child: v.child || '' });
    renderChannels();
    renderLangs();
    renderCats();
    renderVia();
    renderMsgs();
  }

  async function load() {
    say(t('loading'));
    const res = await post('/m/view', { t: state.t });
    if (res.status !== 200) {
      showLinkForm(res.status === 401 ? (res.json.expired ? t('expired') : t('badLink')) : errText(res));
      return;
    }
    state.view = res.json;
    state.order = res.json.order.slice();
    state.stopped = new Set(res.json.channels.filter((c) => c.stopped).map((c) => c.channel));
    state.off = new Set(res.json.categories.filter((c) => c.off && !c.emergency).map((c) => c.name));
    if (res.json.language !== state.lang && res.json.languages.includes(res.json.language)) {
      await loadStrings(res.json.language);
    }
    if (res.json.languages.includes(res.json.language)) remember(res.json.language);
    render();
    $('lg').value = res.json.language;
    $('s-link').hidden = true;
    $('s-main').hidden = false;
    $('s-msgs').hidden = false;
    say('');
    $('h-main').focus();
  }

  async function onSave() {
    const body = {
      t: state.t,
      lg: $('lg').value,
      ch: state.order.slice(),
      xc: state.order.filter((c) => state.stopped.has(c)),
      ox: state.view.categories.filter((c) => !c.emergency && state.off.has(c.name))
        .map((c) => c.name),
    };
    const code = $('code').value.replace(/\s/g, '');
    const pass = $('passcode').value.trim();
    if (code) body.code = code;
    else if (pass) body.passcode = pass;
    $('save').disabled = true;
    say(t('saving'));
    const res = await post('/m/save', body);
    $('save').disabled = false;
    if (res.status === 403 && res.json.need_code) {
      $('codebox').hidden = false;
      say(code || pass ? errText(res) : t('needCode'), true);
      if (code || pass) { $('code').value = ''; $('code').focus(); } else { $('h-code').focus(); }
      return;
    }
    if (res.status === 401) { showLinkForm(res.json.expired ? t('expired') : t('badLink')); return; }
    if (res.status !== 200) { say(errText(res), true); return; }
    $('code').value = '';
    $('passcode').value = '';
    $('codebox').hidden = true;
    // what was saved is what the page now stands on
    for (const c of state.view.categories) c.off = body.ox.includes(c.name);
    state.view.language = body.lg;
    if (body.lg !== state.lang && state.view.languages.includes(body.lg)) await loadStrings(body.lg);
    say(t('saved'));
    $('save').focus();
  }

  async function onSendCode() {
    $('sendcode').disabled = true;
    const res = await post('/m/code', { t: state.t, via: $('via').value });
    $('sendcode').disabled = false;
    if (res.status !== 202) { say(errText(res), true); return; }
    say(t('codeSent', { to: res.json.sent }));
    $('code').focus();
  }

  async function onLink(ev) {
    ev.preventDefault();
    const id = $('sheet').value.trim(), email = $('email').value.trim();
    if (!id || !email) { say(t('needIdEmail'), true); $(id ? 'email' : 'sheet').focus(); return; }
    const btn = ev.target.querySelector('button');
    btn.disabled = true;
    const res = await post('/m/link', { id, email });
    btn.disabled = false;
    if (res.status !== 202) { say(errText(res), true); return; }
    say(t('linkSent'));
  }

  // The language this browser last showed (the list's choice, or the
  // guardian's own once a link opened; the registration page keeps the same
  // key): the first look, and the "send me my link" form of an old link,
  // come in it rather than in Japanese.
  function remembered() {
    let l = null;
    try { l = localStorage.getItem('kairan-lang'); } catch (e) { /* private mode */ }
    return [...$('uilang').options].some((o) => o.value === l) ? l : null;
  }

  function remember(l) {
    try { localStorage.setItem('kairan-lang', l); } catch (e) { /* private mode */ }
  }

  document.addEventListener('DOMContentLoaded', async () => {
    await loadStrings(remembered() || 'ja');
    $('uilang').addEventListener('change', () => {
      remember($('uilang').value);
      loadStrings($('uilang').value);
    });
    $('f-link').addEventListener('submit', onLink);
    $('save').addEventListener('click', onSave);
    $('sendcode').addEventListener('click', onSendCode);
    const start = () => {
      const tk = new URLSearchParams(location.hash.slice(1)).get('t');
      if (tk) {
        state.t = tk;
        try { sessionStorage.setItem('kairan-mypage', tk); } catch (e) { /* private mode */ }
        // The token leaves the address bar (screenshots, shoulder surfing).
        history.replaceState(null, '', '/m');
      } else {
        try { state.t = sessionStorage.getItem('kairan-mypage'); } catch (e) { state.t = null; }
      }
      if (state.t) load(); else showLinkForm('');
    };
    window.addEventListener('hashchange', start);
    start();
  });
})();
