// compose.js - 新規連絡 (#compose): write a broadcast, load or save a
// template, preview what each channel delivers, send it to oneself, then
// confirm (recipients per channel) and send.  Endpoints (docs/http-api.md):
// GET /v1/groups, /v1/directory, /v1/categories, /v1/templates,
// PUT/DELETE /v1/templates/{name}, POST /v1/broadcasts/preview,
// /v1/broadcasts/test, /v1/broadcasts.  Every value is put in the page as
// text (KN.el): nothing typed or stored is ever parsed as markup.
'use strict';

(function () {
  const LINE_MAX = 5000; // UTF-16 units per LINE text (the adapter's cut)
  const LINE_BODY_BUBBLES = 4; // the subject takes the first of five
  const PUSH_MAX = 4096; // bytes of a push payload
  const CHANNELS = ['email', 'line', 'push'];
  const ESCALATE = ['', '10m', '30m', '1h', '3h'];
  const ESCALATE_TO = ['next_channel', 'next_guardian'];
  // Translations (issue 16): the languages offered, each named in itself;
  // "" is a code typed by hand.  The main text is Japanese.
  const LANGS = [['en', 'English'], ['pt', 'Português'], ['zh', '中文'],
    ['vi', 'Tiếng Việt'], ['fil', 'Filipino'], ['', null]];
  const LANG_RE = /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$/; // kn_lang_valid
  const TR_MAX = 8;
  const el = (...a) => KN.el(...a);
  const t = (k, v) => KN.t(k, v);
  const utf8Len = (s) => new TextEncoder().encode(s).length;

  // "2026-12-06T07:00" typed into datetime-local is JST, whatever the
  // browser's own zone: the offset is written, never the browser's.
  const jst = (v) => (v ? v + ':00+09:00' : undefined);
  // Now in JST as a datetime-local value (the picker's minimum).
  const jstNow = () => new Date(Date.now() + 9 * 3600 * 1000).toISOString().slice(0, 16);

  function field(id, label, input, hint) {
    if (hint) input.setAttribute('aria-describedby', id + '-hint');
    return el('p', { class: 'field' }, el('label', { for: id }, label),
      hint ? el('span', { id: id + '-hint', class: 'hint' }, hint) : null, input);
  }

  function check(id, label, attrs) {
    return el('span', { class: 'check' },
      el('input', Object.assign({ type: 'checkbox', id: id }, attrs || {})),
      el('label', { for: id }, label));
  }

  function categoryLabel(c) {
    const k = 'compose.cat.' + c.name;
    const s = t(k);
    return s === k ? c.name : s;
  }

  KN.page('compose', (root) => {
    const st = { groups: [], picked: new Map(), templates: [], preview: null, alive: true };
    const sender = KN.me && KN.me.role === 'sender';
    root.append(el('h1', null, t('compose.title')));

    // ------------------------------------------------------ templates
    const tplSel = el('select', { id: 'c-tpl' });
    const tplName = el('input', { type: 'text', id: 'c-tpl-name', maxLength: 64, autocomplete: 'off' });
    const tplDel = el('button', { type: 'button', class: 'secondary', id: 'c-tpl-delete', disabled: true }, t('compose.tpl.delete'));
    const tplBox = el('details', { class: 'panel' },
      el('summary', null, t('compose.tpl.title')),
      el('div', { class: 'row' },
        field('c-tpl', t('compose.tpl.pick'), tplSel),
        el('p', { class: 'field' },
          el('button', { type: 'button', class: 'secondary', id: 'c-tpl-load', onclick: loadTemplate }, t('compose.tpl.load')),
          ' ', tplDel)),
      el('div', { class: 'row' },
        field('c-tpl-name', t('compose.tpl.name'), tplName, t('compose.tpl.name_hint')),
        el('p', { class: 'field' },
          el('button', { type: 'button', class: 'secondary', id: 'c-tpl-save', onclick: saveTemplate }, t('compose.tpl.save')))));
    tplDel.addEventListener('click', deleteTemplate);
    tplSel.addEventListener('change', () => {
      const tp = st.templates[Number(tplSel.value)];
      tplDel.disabled = !tp || tp.shipped;
    });

    // --------------------------------------------------------- text
    const subject = el('input', { type: 'text', id: 'c-subject', name: 'subject', required: true, autocomplete: 'off' });
    const body = el('textarea', { id: 'c-body', name: 'body', rows: 10, required: true });
    const counts = el('ul', { id: 'c-counts', class: 'counts', 'aria-live': 'polite' });

    // -------------------------------------------------- translations
    // Each: a language, its subject and body; removable.  A guardian whose
    // language has one gets it, any other the Japanese text.
    const trList = el('div', { id: 'c-tr-list' });
    const trAdd = el('button', { type: 'button', class: 'secondary', id: 'c-tr-add' }, t('compose.tr.add'));
    const trBox = el('fieldset', { id: 'c-tr' }, el('legend', null, t('compose.tr.legend')),
      el('p', { class: 'hint', id: 'c-tr-hint' }, t('compose.tr.hint')), trList, el('p', null, trAdd));
    let trSeq = 0;
    const trs = [];
    function addTranslation(code, subj, text) {
      const n = trSeq++;
      const id = (k) => 'c-tr-' + k + '-' + n;
      const known = LANGS.some(([c]) => c && c === code);
      const lang = el('select', { id: id('lang') },
        ...LANGS.map(([c, name]) => el('option', c ? { value: c, lang: c } : { value: '' }, name || t('compose.tr.other'))));
      const other = el('input', { type: 'text', id: id('code'), maxLength: 15, autocomplete: 'off', spellcheck: 'false' });
      const otherP = field(id('code'), t('compose.tr.code'), other, t('compose.tr.code_hint'));
      const s = el('input', { type: 'text', id: id('subject'), autocomplete: 'off' });
      const b = el('textarea', { id: id('body'), rows: 6 });
      const rm = el('button', { type: 'button', class: 'secondary', id: id('remove') }, t('compose.tr.remove'));
      const box = el('div', { class: 'sub tr', id: id('box'), role: 'group', 'aria-labelledby': id('h') },
        el('h3', { id: id('h') }, t('compose.tr.one', { n: n + 1 })),
        field(id('lang'), t('compose.tr.lang'), lang), otherP,
        field(id('subject'), t('compose.tr.subject'), s),
        field(id('body'), t('compose.tr.body'), b), el('p', null, rm));
      const tr = { box, lang, other, s, b, code: () => (lang.value || other.value.trim()) };
      const sync = () => {
        otherP.hidden = lang.value !== '';
        s.lang = b.lang = LANG_RE.test(tr.code()) ? tr.code() : '';
      };
      lang.value = known ? code : (code ? '' : 'en');
      if (!known && code) other.value = code;
      s.value = subj || '';
      b.value = text || '';
      lang.addEventListener('change', () => { sync(); if (!lang.value) other.focus(); });
      other.addEventListener('input', sync);
      rm.addEventListener('click', () => {
        trs.splice(trs.indexOf(tr), 1);
        box.remove();
        trAdd.hidden = false;
        trAdd.focus();
      });
      sync();
      trs.push(tr);
      trList.append(box);
      trAdd.hidden = trs.length >= TR_MAX;
      return tr;
    }
    trAdd.addEventListener('click', () => { addTranslation('', '', '').lang.focus(); });

    // ----------------------------------------------------- audience
    const groupsBox = el('div', { id: 'c-groups', class: 'checks' }, el('p', { class: 'muted' }, t('common.loading')));
    const whole = check('c-whole', t('compose.whole'));
    const picked = el('ul', { id: 'c-picked', class: 'chips' });
    const search = el('input', { type: 'search', id: 'c-search', autocomplete: 'off', maxLength: 64 });
    const results = el('ul', { id: 'c-results', class: 'results', 'aria-live': 'polite' });
    const students = el('div', { class: 'students' },
      el('div', { class: 'row' },
        field('c-search', t('compose.search'), search, t('compose.search_hint')),
        el('p', { class: 'field' }, el('button', { type: 'button', class: 'secondary', id: 'c-search-go', onclick: doSearch }, t('compose.search_go')))),
      results, el('p', { class: 'muted', id: 'c-picked-label' }, t('compose.picked')), picked);
    search.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); doSearch(); } });
    const audience = el('fieldset', { id: 'c-audience' }, el('legend', null, t('compose.to')),
      sender ? null : whole, groupsBox, sender ? null : students);

    // ------------------------------------------------------ channels
    const chBox = el('fieldset', { id: 'c-channels' }, el('legend', null, t('compose.channels')),
      ...CHANNELS.map((c) => check('c-ch-' + c, t('compose.ch.' + c), { checked: true, value: c })));
    const policy = el('fieldset', { id: 'c-policy' }, el('legend', null, t('compose.policy')),
      el('span', { class: 'check' }, el('input', { type: 'radio', name: 'c-policy', id: 'c-policy-all', value: 'all', checked: true }),
        el('label', { for: 'c-policy-all' }, t('compose.policy.all'))),
      el('span', { class: 'check' }, el('input', { type: 'radio', name: 'c-policy', id: 'c-policy-preferred', value: 'preferred' }),
        el('label', { for: 'c-policy-preferred' }, t('compose.policy.preferred'))));

    // ---------------------------------------------- kind of message
    const category = el('select', { id: 'c-category' });
    const urgent = check('c-urgent', t('compose.urgent'));
    const urgentOk = check('c-urgent-ok', t('compose.urgent_ok'));
    urgentOk.hidden = true;
    const drill = check('c-drill', t('compose.drill'));
    const ack = check('c-ack', t('compose.ack'));
    const choices = [];
    for (let i = 0; i < 6; i++) {
      choices.push(el('input', { type: 'text', id: 'c-choice-' + i, maxLength: 40, autocomplete: 'off' }));
    }
    const escalate = el('select', { id: 'c-escalate' },
      ...ESCALATE.map((v) => el('option', { value: v }, v ? t('compose.escalate.' + v) : t('compose.escalate.none'))));
    // Whom the reminder goes to (issue 16): the next channel of the same
    // family, or the child's next guardian.
    const escalateTo = el('select', { id: 'c-escalate-to' },
      ...ESCALATE_TO.map((v) => el('option', { value: v }, t('compose.escalate_to.' + v))));
    const escalateToField = field('c-escalate-to', t('compose.escalate_to'), escalateTo, t('compose.escalate_to_hint'));
    escalateToField.hidden = true;
    const ackBox = el('div', { id: 'c-ack-box', class: 'sub', hidden: true },
      el('p', { class: 'hint' }, t('compose.choices_hint')),
      el('div', { class: 'row' }, ...choices.map((c, i) => field(c.id, t('compose.choice', { n: i + 1 }), c))),
      field('c-escalate', t('compose.escalate'), escalate, t('compose.escalate_hint')),
      escalateToField);
    escalate.addEventListener('change', () => { escalateToField.hidden = !escalate.value; });
    const kind = el('fieldset', { id: 'c-kind' }, el('legend', null, t('compose.kind')),
      field('c-category', t('compose.category'), category),
      el('p', null, urgent), el('p', null, urgentOk), el('p', null, drill), el('p', null, ack), ackBox);
    urgent.querySelector('input').addEventListener('change', (ev) => {
      urgentOk.hidden = !ev.target.checked;
      urgentOk.querySelector('input').checked = false;
    });
    ack.querySelector('input').addEventListener('change', (ev) => { ackBox.hidden = !ev.target.checked; });
    category.addEventListener('change', () => {
      const c = category.selectedOptions[0];
      if (c && c.dataset.emergency === '1' && !urgent.querySelector('input').checked) {
        urgent.querySelector('input').checked = true;
        urgentOk.hidden = false;
      }
    });

    // ---------------------------------------------------------- when
    const at = el('input', { type: 'datetime-local', id: 'c-at', min: jstNow(), disabled: true });
    const expires = el('input', { type: 'datetime-local', id: 'c-expires', min: jstNow() });
    const when = el('fieldset', { id: 'c-when' }, el('legend', null, t('compose.when')),
      el('span', { class: 'check' }, el('input', { type: 'radio', name: 'c-when', id: 'c-now', value: 'now', checked: true }),
        el('label', { for: 'c-now' }, t('compose.now'))),
      el('span', { class: 'check' }, el('input', { type: 'radio', name: 'c-when', id: 'c-later', value: 'later' }),
        el('label', { for: 'c-later' }, t('compose.later'))),
      field('c-at', t('compose.at'), at, t('compose.jst_hint')),
      field('c-expires', t('compose.expires'), expires, t('compose.expires_hint')));
    for (const r of when.querySelectorAll('input[name=c-when]')) {
      r.addEventListener('change', () => { at.disabled = !when.querySelector('#c-later').checked; if (!at.disabled) at.focus(); });
    }

    // ------------------------------------------------------- buttons
    const busy = (b, on) => { b.disabled = on; b.setAttribute('aria-busy', on ? 'true' : 'false'); };
    const bPreview = el('button', { type: 'button', class: 'secondary', id: 'c-preview-go', onclick: doPreview }, t('compose.preview'));
    const bTest = el('button', { type: 'button', class: 'secondary', id: 'c-test', onclick: doTest }, t('compose.test'));
    const bConfirm = el('button', { type: 'submit', id: 'c-confirm' }, t('compose.confirm'));
    const preview = el('section', { id: 'c-preview', 'aria-labelledby': 'c-preview-h', hidden: true });
    const form = el('form', { id: 'c-form', novalidate: true },
      el('div', { class: 'field' },
        el('label', { for: 'c-subject' }, t('compose.subject')), subject),
      el('div', { class: 'field' },
        el('label', { for: 'c-body' }, t('compose.body')), body, counts),
      trBox, audience, chBox, policy, kind, when,
      el('div', { class: 'actions' }, bPreview, bTest, bConfirm));
    const confirmSec = el('section', { id: 'c-confirm-step', 'aria-labelledby': 'c-confirm-h', hidden: true });
    root.append(tplBox, form, confirmSec, preview);

    subject.addEventListener('input', showCounts);
    body.addEventListener('input', showCounts);
    form.addEventListener('submit', (ev) => { ev.preventDefault(); toConfirm(); });
    whole.querySelector('input').addEventListener('change', (ev) => {
      for (const c of groupsBox.querySelectorAll('input[type=checkbox]')) {
        c.checked = ev.target.checked;
        c.disabled = ev.target.checked;
      }
    });
    showCounts();

    // ---------------------------------------------------------- counts
    function showCounts() {
      const s = subject.value, b = body.value.replace(/\r\n?/g, '\n');
      const units = b.length; // String length is UTF-16 code units
      const bubbles = Math.max(1, Math.ceil(units / LINE_MAX));
      counts.textContent = '';
      counts.append(
        el('li', null, t('compose.count.chars', { n: [...b].length, bytes: utf8Len(b) })),
        el('li', null, t('compose.count.line', { units: units, bubbles: bubbles, max: LINE_MAX })),
        el('li', null, t('compose.count.push', { bytes: utf8Len(s) + utf8Len(b), max: PUSH_MAX })));
      if (bubbles > LINE_BODY_BUBBLES) counts.append(el('li', { class: 'warn' }, t('compose.count.line_cut', { n: LINE_BODY_BUBBLES })));
    }

    // -------------------------------------------------------- the data
    function read() {
      const ch = CHANNELS.filter((c) => chBox.querySelector('#c-ch-' + c).checked);
      const groups = [];
      const all = !sender && whole.querySelector('input').checked;
      for (const c of groupsBox.querySelectorAll('input[type=checkbox]')) {
        if (all || c.checked) groups.push(c.value);
      }
      const bc = {
        subject: subject.value.trim(),
        body: body.value,
        category: category.value || 'notice',
        priority: urgent.querySelector('input').checked ? 'urgent' : 'normal',
        drill: drill.querySelector('input').checked,
        channels: ch,
        policy: policy.querySelector('#c-policy-preferred').checked ? 'preferred' : 'all',
        audience: { groups: groups },
      };
      if (st.picked.size) bc.audience.recipients = [...st.picked.keys()];
      if (trs.length) {
        bc.translations = {};
        for (const tr of trs) bc.translations[tr.code()] = { subject: tr.s.value.trim(), body: tr.b.value };
      }
      if (ack.querySelector('input').checked) {
        bc.ack = true;
        const cs = choices.map((c) => c.value.trim()).filter((v) => v);
        if (cs.length) bc.choices = cs;
        if (escalate.value) bc.escalate_after = escalate.value;
        if (escalate.value && escalateTo.value === 'next_guardian') bc.escalate_to = 'next_guardian';
      }
      if (when.querySelector('#c-later').checked && at.value) bc.send_at = jst(at.value);
      if (expires.value) bc.expires_at = jst(expires.value);
      return bc;
    }

    // What to fix before anything is sent to the server; null if fine.
    function problem(bc, forSend) {
      if (!bc.subject) return [subject, t('compose.need.subject')];
      if (!bc.body.trim()) return [body, t('compose.need.body')];
      if (!bc.channels.length) return [chBox.querySelector('input'), t('compose.need.channel')];
      if (!bc.audience.groups.length && !(bc.audience.recipients || []).length) {
        return [groupsBox.querySelector('input') || search || subject, t('compose.need.audience')];
      }
      if (when.querySelector('#c-later').checked && !at.value) return [at, t('compose.need.at')];
      const seen = new Set();
      for (const tr of trs) {
        const c = tr.code();
        if (!LANG_RE.test(c) || c === 'ja' || c.startsWith('ja-')) return [tr.lang.value ? tr.lang : tr.other, t('compose.need.tr_code')];
        if (seen.has(c)) return [tr.lang.value ? tr.lang : tr.other, t('compose.need.tr_twice', { code: c })];
        seen.add(c);
        if (!tr.s.value.trim()) return [tr.s, t('compose.need.tr_subject', { code: c })];
        if (!tr.b.value.trim()) return [tr.b, t('compose.need.tr_body', { code: c })];
      }
      if (bc.ack && bc.choices && bc.choices.length === 1) return [choices[1], t('compose.need.choices')];
      if (forSend && bc.priority === 'urgent' && !urgentOk.querySelector('input').checked) {
        return [urgentOk.querySelector('input'), t('compose.need.urgent_ok')];
      }
      return null;
    }

    function refuse(p) {
      KN.error(root, p[1]);
      if (p[0]) p[0].focus();
    }

    // A server error, with the field it names when there is one.
    function failed(r) {
      const f = r.json && r.json.field;
      KN.error(root, (f ? '[' + f + '] ' : '') + KN.failText(r));
    }

    // ------------------------------------------------------- loading
    async function loadGroups() {
      const r = await KN.api('GET', '/v1/groups');
      if (!st.alive) return;
      groupsBox.textContent = '';
      if (r.status !== 200 || !r.json) { groupsBox.append(el('p', { class: 'muted' }, KN.failText(r))); return; }
      st.groups = r.json.groups;
      if (!st.groups.length) { groupsBox.append(el('p', { class: 'muted' }, t('compose.no_groups'))); return; }
      st.groups.forEach((g, i) => {
        const id = 'c-g-' + i;
        groupsBox.append(el('span', { class: 'check' },
          el('input', { type: 'checkbox', id: id, value: g.name, 'aria-describedby': id + '-n' }),
          el('label', { for: id }, g.name),
          el('span', { id: id + '-n', class: 'muted' }, t('compose.members', { n: g.members }))));
      });
    }

    async function loadCategories() {
      const r = await KN.api('GET', '/v1/categories');
      if (!st.alive) return;
      const cats = r.status === 200 && r.json ? r.json.categories : [{ name: 'notice' }];
      category.textContent = '';
      for (const c of cats) {
        category.append(el('option', { value: c.name, 'data-emergency': c.emergency ? '1' : '0' }, categoryLabel(c)));
      }
    }

    async function loadTemplates(select) {
      const r = await KN.api('GET', '/v1/templates');
      if (!st.alive) return;
      tplSel.textContent = '';
      if (r.status !== 200 || !r.json) return;
      st.templates = r.json.templates;
      st.templates.forEach((tp, i) => {
        tplSel.append(el('option', { value: String(i) }, tp.shipped ? t('compose.tpl.shipped', { name: tp.name }) : tp.name));
        if (select && tp.name === select) tplSel.value = String(i);
      });
      tplSel.dispatchEvent(new Event('change'));
    }

    function loadTemplate() {
      const tp = st.templates[Number(tplSel.value)];
      if (!tp) return;
      subject.value = tp.subject || '';
      body.value = tp.body || '';
      if (tp.category) {
        if (![...category.options].some((o) => o.value === tp.category)) {
          category.append(el('option', { value: tp.category }, tp.category));
        }
        category.value = tp.category;
      }
      const u = tp.priority === 'urgent';
      urgent.querySelector('input').checked = u;
      urgentOk.hidden = !u;
      urgentOk.querySelector('input').checked = false;
      drill.querySelector('input').checked = !!tp.drill;
      for (const c of CHANNELS) chBox.querySelector('#c-ch-' + c).checked = !tp.channels || tp.channels.indexOf(c) >= 0;
      policy.querySelector(tp.policy === 'preferred' ? '#c-policy-preferred' : '#c-policy-all').checked = true;
      ack.querySelector('input').checked = !!tp.ack;
      ackBox.hidden = !tp.ack;
      choices.forEach((c, i) => { c.value = (tp.choices && tp.choices[i]) || ''; });
      escalate.value = ESCALATE.indexOf(tp.escalate_after || '') >= 0 ? (tp.escalate_after || '') : '';
      escalateTo.value = tp.escalate_to === 'next_guardian' ? 'next_guardian' : 'next_channel';
      escalateToField.hidden = !escalate.value;
      while (trs.length) trs.pop().box.remove();
      for (const [c, x] of Object.entries(tp.translations || {})) addTranslation(c, x.subject, x.body);
      trAdd.hidden = trs.length >= TR_MAX;
      if (!tp.shipped) tplName.value = tp.name;
      showCounts();
      KN.notice(t('compose.tpl.loaded', { name: tp.name }));
      subject.focus();
    }

    async function saveTemplate() {
      const name = tplName.value.trim();
      if (!name) { KN.error(root, t('compose.tpl.need_name')); tplName.focus(); return; }
      const bc = read();
      const tp = { subject: bc.subject, body: bc.body, category: bc.category, priority: bc.priority,
        drill: bc.drill, channels: bc.channels, policy: bc.policy };
      if (bc.ack) { tp.ack = true; if (bc.choices) tp.choices = bc.choices; if (bc.escalate_after) tp.escalate_after = bc.escalate_after; if (bc.escalate_to) tp.escalate_to = bc.escalate_to; }
      if (bc.translations) tp.translations = bc.translations;
      const r = await KN.api('PUT', '/v1/templates/' + encodeURIComponent(name), tp);
      if (r.status === 200) {
        KN.error(root, '');
        KN.notice(t('compose.tpl.saved', { name: r.json.name }));
        await loadTemplates(r.json.name);
      } else failed(r);
    }

    async function deleteTemplate() {
      const tp = st.templates[Number(tplSel.value)];
      if (!tp || tp.shipped) return;
      if (!window.confirm(t('compose.tpl.delete_q', { name: tp.name }))) return;
      const r = await KN.api('DELETE', '/v1/templates/' + encodeURIComponent(tp.name));
      if (r.status === 200) { KN.notice(t('compose.tpl.deleted', { name: tp.name })); await loadTemplates(); } else failed(r);
    }

    // ------------------------------------------------ single students
    function drawPicked() {
      picked.textContent = '';
      for (const [id, x] of st.picked) {
        picked.append(el('li', null, `${x.name || id}（${x.class || '-'}・${id}）`, ' ',
          el('button', { type: 'button', class: 'secondary small', 'aria-label': t('compose.remove_of', { name: x.name || id }),
            onclick: () => { st.picked.delete(id); drawPicked(); search.focus(); } }, t('compose.remove'))));
      }
    }

    async function doSearch() {
      const q = search.value.trim();
      const r = await KN.api('GET', '/v1/directory?limit=20&q=' + encodeURIComponent(q));
      results.textContent = '';
      if (r.status !== 200 || !r.json) { failed(r); return; }
      if (!r.json.recipients.length) { results.append(el('li', { class: 'muted' }, t('compose.search_none'))); return; }
      for (const x of r.json.recipients) {
        results.append(el('li', null, `${x.name || x.id}（${x.class || '-'}・${x.id}）`, ' ',
          el('button', { type: 'button', class: 'secondary small', disabled: st.picked.has(x.id),
            'aria-label': t('compose.add_of', { name: x.name || x.id }),
            onclick: (ev) => { st.picked.set(x.id, x); ev.target.disabled = true; drawPicked(); } }, t('compose.add'))));
      }
    }

    // -------------------------------------------------------- preview
    // With translations, a row of buttons shows the texts as each
    // language's readers get them (POST /v1/broadcasts/preview?lang=).
    function langButtons(bc, cur) {
      const codes = Object.keys(bc.translations || {});
      if (!codes.length) return null;
      const name = (c) => (LANGS.find(([x]) => x === c) || [c, c])[1];
      const box = el('div', { class: 'pv-langs', id: 'c-pv-langs', role: 'group', 'aria-label': t('compose.pv.langs') });
      for (const c of ['ja', ...codes]) {
        box.append(el('button', {
          type: 'button', class: 'secondary', id: 'c-pv-lang-' + c, lang: c,
          'aria-pressed': c === cur ? 'true' : 'false', onclick: () => previewIn(bc, c),
        }, c === 'ja' ? '日本語' : name(c)));
      }
      return el('p', null, el('span', { class: 'hint' }, t('compose.pv.langs_hint')), ' ', box);
    }

    async function previewIn(bc, lang) {
      const q = lang === 'ja' ? '' : '?lang=' + encodeURIComponent(lang);
      const r = await KN.api('POST', '/v1/broadcasts/preview' + q, bc);
      if (r.status !== 200 || !r.json) { failed(r); return; }
      drawPreview(r.json, bc, lang);
      const b = document.getElementById('c-pv-lang-' + lang);
      if (b) b.focus();
    }

    function drawPreview(p, bc, lang) {
      preview.textContent = '';
      preview.hidden = false;
      const tx = p.texts, rc = p.recipients;
      preview.append(el('h2', { id: 'c-preview-h', tabIndex: -1 }, t('compose.preview_h')),
        el('p', null, t('compose.rc', { children: rc.children, guardians: rc.guardians }),
          rc.no_contact ? ' ' + t('compose.rc_none', { n: rc.no_contact }) : '',
          rc.truncated ? ' ' + t('compose.rc_trunc') : ''));
      const per = el('ul', { class: 'stats', id: 'c-per-channel' });
      for (const [c, n] of Object.entries(rc.messages)) {
        per.append(el('li', null, t('compose.ch.' + c), el('span', { class: 'big' }, String(n)), t('compose.msgs')));
      }
      preview.append(per);
      const langs = langButtons(bc || {}, lang || 'ja');
      if (langs) preview.append(langs);
      if (tx.email) {
        const e = tx.email;
        preview.append(el('h3', null, t('compose.pv.email')),
          el('div', { class: 'mail', id: 'c-pv-email' },
            el('dl', { class: 'mail-head' },
              el('dt', null, t('compose.pv.from')), el('dd', null, e.from),
              el('dt', null, t('compose.pv.to')), el('dd', null, t('compose.pv.to_each')),
              el('dt', null, t('compose.pv.subject')), el('dd', { class: 'mail-subject' }, e.subject),
              e.urgent ? el('dt', null, t('compose.pv.importance')) : null,
              e.urgent ? el('dd', null, t('compose.pv.high')) : null),
            el('div', { class: 'mail-body' }, e.body)));
      }
      if (tx.line) {
        const box = el('ol', { class: 'line', id: 'c-pv-line', 'aria-label': t('compose.pv.line') });
        tx.line.messages.forEach((m) => box.append(el('li', null, el('div', { class: 'bubble' }, m.text),
          el('span', { class: 'hint' }, t('compose.pv.units', { n: m.units, max: tx.line.max_units })))));
        preview.append(el('h3', null, t('compose.pv.line')), box);
      }
      if (tx.push) {
        const box = el('div', { class: 'pushes', id: 'c-pv-push' });
        for (const plat of ['fcm', 'apns']) {
          const n = tx.push[plat];
          if (!n) continue;
          box.append(el('div', { class: 'push' },
            el('p', { class: 'push-app' }, t('compose.pv.' + plat)),
            el('p', { class: 'push-title' }, n.title),
            el('p', { class: 'push-body' }, n.body),
            el('p', { class: 'hint' }, t('compose.pv.bytes', { n: n.bytes, max: tx.push.max_bytes }))));
        }
        preview.append(el('h3', null, t('compose.pv.push')), box);
      }
    }

    async function doPreview() {
      const bc = read();
      const p = problem(bc, false);
      if (p) { refuse(p); return; }
      busy(bPreview, true);
      const r = await KN.api('POST', '/v1/broadcasts/preview', bc);
      busy(bPreview, false);
      if (r.status !== 200 || !r.json) { failed(r); return; }
      KN.error(root, '');
      st.preview = r.json;
      drawPreview(r.json, bc);
      preview.querySelector('h2').focus();
    }

    async function doTest() {
      const bc = read();
      const p = problem(bc, false);
      if (p) { refuse(p); return; }
      busy(bTest, true);
      const r = await KN.api('POST', '/v1/broadcasts/test', bc);
      busy(bTest, false);
      if (r.status === 202) { KN.error(root, ''); KN.notice(t('compose.test_sent')); return; }
      if (r.status === 409) { KN.error(root, t('compose.test_no_email')); return; }
      failed(r);
    }

    // ---------------------------------------------------- confirmation
    async function toConfirm() {
      const bc = read();
      const p = problem(bc, true);
      if (p) { refuse(p); return; }
      busy(bConfirm, true);
      const r = await KN.api('POST', '/v1/broadcasts/preview', bc);
      busy(bConfirm, false);
      if (r.status !== 200 || !r.json) { failed(r); return; }
      KN.error(root, '');
      drawPreview(r.json, bc);
      const rc = r.json.recipients;
      const rows = [
        [t('compose.subject'), r.json.texts.subject],
        [t('compose.to'), [...bc.audience.groups, ...[...st.picked.values()].map((x) => x.name || x.id)].join('、')],
        [t('compose.channels'), bc.channels.map((c) => t('compose.ch.' + c)).join('、')],
        [t('compose.category'), category.selectedOptions[0] ? category.selectedOptions[0].textContent : bc.category],
        [t('compose.when'), bc.send_at ? KN.fmtDate(bc.send_at) + t('compose.scheduled') : t('compose.now')],
        [t('compose.children'), t('compose.n_children', { n: rc.children })],
      ];
      if (trs.length) {
        const name = (c) => { const l = LANGS.find(([x]) => x === c); return l ? l[1] : c; };
        rows.splice(1, 0, [t('compose.tr.legend'), trs.map((tr) => name(tr.code())).join('、')]);
        for (const tr of trs) rows.splice(2, 0, [t('compose.tr.subject_of', { lang: name(tr.code()) }), tr.s.value.trim()]);
      }
      for (const [c, n] of Object.entries(rc.messages)) rows.push([t('compose.ch.' + c), t('compose.n_msgs', { n: n })]);
      const bSend = el('button', { type: 'button', id: 'c-send', class: bc.priority === 'urgent' ? 'danger' : '' }, t('compose.send'));
      const bBack = el('button', { type: 'button', class: 'secondary', id: 'c-back' }, t('compose.back'));
      confirmSec.textContent = '';
      confirmSec.append(el('h2', { id: 'c-confirm-h', tabIndex: -1 }, t('compose.confirm_h')),
        el('div', null,
          bc.priority === 'urgent' ? el('p', { class: 'kn-warn' }, t('compose.urgent_warn')) : null,
          bc.drill ? el('p', null, el('span', { class: 'tag drill' }, t('compose.drill_mark'))) : null),
        el('table', { class: 'cards', id: 'c-summary' },
          el('tbody', null, ...rows.map(([k, v]) => el('tr', null, el('th', { scope: 'row' }, k), el('td', null, v))))),
        el('div', { class: 'actions' }, bSend, bBack));
      form.hidden = true;
      tplBox.hidden = true;
      confirmSec.hidden = false;
      confirmSec.querySelector('h2').focus();
      bBack.addEventListener('click', () => {
        confirmSec.hidden = true;
        form.hidden = false;
        tplBox.hidden = false;
        bConfirm.focus();
      });
      bSend.addEventListener('click', async () => {
        busy(bSend, true);
        const s = await KN.api('POST', '/v1/broadcasts', bc);
        busy(bSend, false);
        if ((s.status === 202 || s.status === 200) && s.json && s.json.id) {
          KN.notice(t(bc.send_at ? 'compose.scheduled_done' : 'compose.sent', { when: bc.send_at ? KN.fmtDate(bc.send_at) : '' }));
          KN.go('#b/' + encodeURIComponent(s.json.id));
          return;
        }
        failed(s);
      });
    }

    loadGroups();
    loadCategories();
    loadTemplates();
    return () => { st.alive = false; };
  });
})();
