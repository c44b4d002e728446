// signup.js - 名簿's part for guardians signing up (issue 15), drawn by
// roster.js for a tenant's admins through KN.rosterSignup(root):
//  1. 登録用紙を印刷: POST /v1/directory/sheets {group, reissue, format}
//     issues the sheets exactly as kairanctl recipients sheets does; the
//     answer (the printable page, or CSV for mail merge) is saved as a
//     file, and the counts (X-Kairan-Issued, X-Kairan-Skipped: students
//     whose passcode is still live) are said.  再発行 voids the live
//     passcodes: it is asked again before it is sent.
//  2. 未登録: GET /v1/directory/unregistered[?group=G]: per class counts
//     and the students no guardian has registered for, with the channels
//     the school holds.
//  3. 未登録の家庭に登録のお願いを送る: POST /v1/directory/remind with
//     dry_run first (how many get it, how many have no contact), then,
//     once confirmed, for real: one normal broadcast (ホーム, 配信状況).
// Every value from the server goes into textContent only.
'use strict';

(function () {
  const el = (...a) => KN.el(...a);

  // A POST whose answer is a file, not JSON: the same cookie and CSRF
  // token as KN.api.
  async function postFile(path, body) {
    const h = { 'Content-Type': 'application/json' };
    const csrf = sessionStorage.getItem('kairan.csrf');
    if (csrf) h['X-CSRF-Token'] = csrf;
    try {
      const res = await fetch(KN.url(path), {
        method: 'POST', credentials: 'same-origin', headers: h, body: JSON.stringify(body), cache: 'no-store',
      });
      if (!res.ok) {
        let json = null;
        try { json = await res.json(); } catch (e) { json = null; }
        return { status: res.status, json: json };
      }
      return {
        status: res.status,
        blob: await res.blob(),
        issued: parseInt(res.headers.get('X-Kairan-Issued') || '0', 10),
        skipped: parseInt(res.headers.get('X-Kairan-Skipped') || '0', 10),
      };
    } catch (e) {
      return { status: 0, json: null };
    }
  }

  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  KN.rosterSignup = function (root) {
    const group = el('select', { id: 'signup-group', name: 'group' },
      el('option', { value: '' }, KN.t('roster.signup_all')));
    const format = el('select', { id: 'signup-format', name: 'format' },
      el('option', { value: 'html' }, KN.t('roster.sheets_html')),
      el('option', { value: 'csv' }, KN.t('roster.sheets_csv')));
    const reissue = el('input', { type: 'checkbox', id: 'signup-reissue', name: 'reissue', 'aria-describedby': 'signup-reissue-hint' });
    const print = el('button', { type: 'button', id: 'signup-sheets' }, KN.t('roster.sheets_print'));
    const sheetsOut = el('div', { id: 'signup-sheets-out', 'aria-live': 'polite' });
    const show = el('button', { type: 'button', id: 'signup-unreg', class: 'secondary' }, KN.t('roster.unreg_show'));
    const unregOut = el('div', { id: 'signup-unreg-out', 'aria-live': 'polite' });
    const field = (id, label, input) => el('p', { class: 'field' }, el('label', { for: id }, label), input);

    root.append(el('section', { 'aria-labelledby': 'signup-h', id: 'signup' },
      el('h2', { id: 'signup-h' }, KN.t('roster.signup')),
      el('p', { class: 'hint' }, KN.t('roster.signup_hint')),
      el('div', { class: 'row' }, field('signup-group', KN.t('roster.signup_group'), group),
        field('signup-format', KN.t('roster.sheets_format'), format)),
      el('p', { class: 'field check' }, reissue, ' ', el('label', { for: 'signup-reissue' }, KN.t('roster.sheets_reissue'))),
      el('p', { class: 'hint', id: 'signup-reissue-hint' }, KN.t('roster.sheets_reissue_hint')),
      el('p', { class: 'actions' }, print, show),
      sheetsOut, unregOut));

    (async () => {
      const r = await KN.api('GET', '/v1/groups').catch(() => ({ status: 0 }));
      if (r.status !== 200 || !r.json) return;
      for (const g of r.json.groups || []) group.append(el('option', { value: g.name }, g.name));
    })();

    const chosen = () => (group.value ? { group: group.value } : {});

    print.addEventListener('click', async () => {
      if (reissue.checked && !window.confirm(KN.t('roster.sheets_reissue_confirm'))) return;
      const body = Object.assign(chosen(), { reissue: reissue.checked, format: format.value });
      print.disabled = true;
      sheetsOut.textContent = '';
      sheetsOut.append(el('p', { class: 'muted' }, KN.t('roster.sheets_working')));
      const r = await postFile('/v1/directory/sheets', body);
      print.disabled = false;
      sheetsOut.textContent = '';
      if (r.status !== 200) { KN.error(root, KN.failText(r)); return; }
      KN.error(root, '');
      if (r.issued > 0) {
        const name = (KN.t('roster.sheets_file') + (group.value ? '-' + group.value : '')).replace(/[\\/:*?"<>|]/g, '_');
        save(r.blob, name + '.' + (format.value === 'csv' ? 'csv' : 'html'));
      }
      sheetsOut.append(el('p', { id: 'signup-sheets-count' },
        r.issued > 0 ? KN.t('roster.sheets_done', { n: r.issued }) : KN.t('roster.sheets_none')));
      if (r.skipped > 0) sheetsOut.append(el('p', { class: 'hint', id: 'signup-skipped' }, KN.t('roster.sheets_skipped', { n: r.skipped })));
      reissue.checked = false;
    });

    async function unregistered() {
      unregOut.textContent = '';
      const q = group.value ? '?group=' + encodeURIComponent(group.value) : '';
      const r = await KN.api('GET', '/v1/directory/unregistered' + q).catch(() => ({ status: 0 }));
      if (r.status !== 200 || !r.json) { KN.error(root, KN.failText(r)); return; }
      KN.error(root, '');
      const j = r.json;
      unregOut.append(el('h3', { id: 'signup-unreg-h' }, KN.t('roster.unreg_h', { n: j.unregistered, active: j.active })));
      if (!j.unregistered) { unregOut.append(el('p', null, KN.t('roster.unreg_none'))); return; }
      unregOut.append(el('ul', { class: 'stats', id: 'signup-classes' }, (j.classes || []).map((c) =>
        el('li', { 'data-class': c.class }, el('span', { class: 'big num' }, String(c.unregistered)), c.class || KN.t('roster.unreg_noclass')))));
      const tb = el('tbody');
      for (const s of j.students || []) {
        const ch = (s.channels || []).map((c) => KN.t('roster.unreg_ch.' + c)).join('・');
        tb.append(el('tr', null,
          el('td', { 'data-label': KN.t('roster.col.class') }, s.class || ''),
          el('td', { 'data-label': 'ID' }, s.id),
          el('td', { 'data-label': KN.t('roster.col.name') }, s.name || ''),
          el('td', { 'data-label': KN.t('roster.unreg_contact') }, ch || KN.t('roster.unreg_nocontact'))));
      }
      unregOut.append(el('table', { class: 'cards', id: 'signup-unreg-list' },
        el('caption', { class: 'sr-only' }, KN.t('roster.unreg_list')),
        el('thead', null, el('tr', null, [KN.t('roster.col.class'), 'ID', KN.t('roster.col.name'), KN.t('roster.unreg_contact')].map((h) =>
          el('th', { scope: 'col' }, h)))), tb));
      if (j.no_contact > 0) unregOut.append(el('p', { class: 'hint' }, KN.t('roster.unreg_nocontact_n', { n: j.no_contact })));
      const remind = el('button', { type: 'button', id: 'signup-remind' }, KN.t('roster.remind'));
      remind.addEventListener('click', () => doRemind(remind));
      unregOut.append(el('p', { class: 'actions' }, remind), el('div', { id: 'signup-remind-out', 'aria-live': 'polite' }));
    }

    async function doRemind(button) {
      const where = document.getElementById('signup-remind-out');
      where.textContent = '';
      const dry = await KN.api('POST', '/v1/directory/remind', Object.assign(chosen(), { dry_run: true })).catch(() => ({ status: 0 }));
      if (dry.status !== 200 || !dry.json) { KN.error(root, KN.failText(dry)); return; }
      const d = dry.json;
      if (!d.sent) { where.append(el('p', null, KN.t('roster.remind_nobody', { none: d.no_contact }))); return; }
      if (!window.confirm(KN.t('roster.remind_confirm', { n: d.sent, none: d.no_contact }))) return;
      button.disabled = true;
      const r = await KN.api('POST', '/v1/directory/remind', chosen()).catch(() => ({ status: 0 }));
      if (r.status !== 202 || !r.json) { button.disabled = false; KN.error(root, KN.failText(r)); return; }
      KN.error(root, '');
      where.append(el('p', { id: 'signup-remind-done' }, KN.t('roster.remind_done', { n: r.json.sent, none: r.json.no_contact }), ' ',
        el('a', { href: '#b/' + encodeURIComponent(r.json.id) }, KN.t('roster.remind_open'))));
      KN.notice(KN.t('roster.remind_done', { n: r.json.sent, none: r.json.no_contact }));
    }

    show.addEventListener('click', unregistered);
    group.addEventListener('change', () => { if (unregOut.firstChild) unregistered(); });
  };
})();
