// roster.js - 名簿 (#roster): the class list.
//  1. 取り込み: a CSV dropped on the drop zone (or chosen with the file
//     input, for the keyboard) is sent as it is to
//     POST /v1/directory/import?dry_run=1 (the same checks as kairanctl
//     recipients import); the dry run's counts and every bad row (line and
//     reason) are shown; unknown columns are asked about, and on "ignore"
//     the same file is checked again with ignore_column=...; each reason
//     in the console's language (reason_ja, error_ja: the row as Excel
//     shows it, the column as the file's header names it; English
//     otherwise), as the suppressions' reasons are; then 反映する
//     posts it without dry_run (skip_bad=1 only if the user accepts that
//     bad rows are left out).
//  2. 検索: GET /v1/directory?q= (students by id, name or class) and, per
//     student, GET/PATCH /v1/directory/{id}: edit name, class, groups;
//     deactivate or reactivate; each guardian's name, e-mail address and
//     phone (the address shown masked; LINE ids and push tokens come only
//     from the import); a suppressed address (mail came back, issue 18)
//     shows as 配信停止中 with its reason and is cleared with
//     DELETE /v1/suppressions/{ref}.
//  3. グループ: GET /v1/groups (names and sizes).
//  登録用紙, 未登録 and the reminder (issue 15) are signup.js's.
// Every value from the file or the server goes into textContent only.
'use strict';

(function () {
  const el = (...a) => KN.el(...a);

  // The CSV goes as its own bytes (UTF-8 or CP932: the server decides),
  // so KN.api (JSON only) is not used; the same cookie and CSRF token are.
  async function postCsv(query, bytes) {
    const h = { 'Content-Type': 'text/csv' };
    const csrf = sessionStorage.getItem('kairan.csrf');
    if (csrf) h['X-CSRF-Token'] = csrf;
    try {
      const res = await fetch(KN.url('/v1/directory/import' + query), {
        method: 'POST', credentials: 'same-origin', headers: h, body: bytes, cache: 'no-store',
      });
      let json = null;
      try { json = await res.json(); } catch (e) { json = null; }
      return { status: res.status, json: json };
    } catch (e) {
      return { status: 0, json: null };
    }
  }

  // A reason from the server in the console's language: o[k + '_ja'] in
  // Japanese (the import's reason_ja, error_ja, decode_error_ja), else
  // o[k], the English one.
  const said = (o, k) => (KN.lang === 'ja' ? o[k + '_ja'] : o[k]) || o[k] || '';

  const field = (id, label, input, hint) => el('p', { class: 'field' },
    el('label', { for: id }, label), hint ? el('span', { class: 'hint', id: id + '-hint' }, hint) : null, input);

  // ------------------------------------------------------------ import

  function importSection(root) {
    const st = { bytes: null, name: '', ignore: [], result: null };
    const file = el('input', { type: 'file', id: 'roster-file', name: 'file', accept: '.csv,text/csv' });
    const drop = el('div', { class: 'drop', id: 'roster-drop' },
      el('p', null, KN.t('roster.drop')), field('roster-file', KN.t('roster.choose'), file));
    const replace = el('input', { type: 'checkbox', id: 'roster-replace', name: 'replace' });
    const out = el('div', { id: 'roster-result', 'aria-live': 'polite' });
    const sec = el('section', { 'aria-labelledby': 'roster-import-h' },
      el('h2', { id: 'roster-import-h' }, KN.t('roster.import')),
      el('p', { class: 'hint' }, KN.t('roster.import_hint')),
      drop,
      el('p', { class: 'field check' }, replace, ' ', el('label', { for: 'roster-replace' }, KN.t('roster.replace'))),
      out);
    root.append(sec);

    const query = (dry) => {
      const q = [];
      if (dry) q.push('dry_run=1');
      if (replace.checked) q.push('replace=1');
      for (const c of st.ignore) q.push('ignore_column=' + encodeURIComponent(c));
      if (!dry && st.result && st.result.skipped > 0) q.push('skip_bad=1');
      return q.length ? '?' + q.join('&') : '';
    };

    async function check() {
      out.textContent = '';
      out.append(el('p', { class: 'muted' }, KN.t('roster.checking', { file: st.name })));
      const r = await postCsv(query(true), st.bytes);
      show(r);
    }

    function counts(j) {
      return el('ul', { class: 'stats', id: 'roster-counts' },
        ['added', 'updated', 'unchanged', 'deleted'].map((k) =>
          el('li', { 'data-count': k }, el('span', { class: 'big num' }, String(j[k] || 0)), KN.t('roster.count.' + k))));
    }

    function badRows(j) {
      if (!j.bad_rows || !j.bad_rows.length) return null;
      const tb = el('tbody');
      for (const b of j.bad_rows) {
        // The row as Excel shows it (a cell with a line break in it does
        // not make two rows there); older servers gave only the line.
        // reason_ja names its row itself ("5行目：…", for a reader of the
        // API alone): here the row has its own column, so not twice.
        const row = b.row || b.line;
        const why = said(b, 'reason');
        const own = row + '行目：';
        tb.append(el('tr', null,
          el('td', { 'data-label': KN.t('roster.col.line'), class: 'num' }, String(row)),
          el('td', { 'data-label': KN.t('roster.col.reason'), class: 'reason' },
            why.startsWith(own) ? why.slice(own.length) : why)));
      }
      return el('div', null,
        el('h3', null, KN.t('roster.bad', { n: j.skipped })),
        el('table', { class: 'cards', id: 'roster-bad' },
          el('thead', null, el('tr', null, el('th', { scope: 'col' }, KN.t('roster.col.line')),
            el('th', { scope: 'col' }, KN.t('roster.col.reason')))), tb),
        j.bad_rows_more ? el('p', { class: 'muted' }, KN.t('roster.bad_more', { n: j.bad_rows_more })) : null);
    }

    function show(r) {
      out.textContent = '';
      const j = r.json;
      if (!j || (r.status !== 200 && r.status !== 422) || j.dry_run === undefined) {
        KN.error(root, KN.failText(r));
        return;
      }
      KN.error(root, '');
      st.result = j;
      if (j.unknown_columns && j.unknown_columns.length) {
        const names = j.unknown_columns.map((u) => KN.t('roster.column_n', { name: u.name, n: u.column, letter: u.letter })).join('、');
        const yes = el('button', { type: 'button', id: 'roster-ignore' }, KN.t('roster.ignore'));
        const no = el('button', { type: 'button', class: 'secondary' }, KN.t('common.cancel'));
        yes.addEventListener('click', () => {
          st.ignore = st.ignore.concat(j.unknown_columns.map((u) => u.name));
          check();
        });
        no.addEventListener('click', () => { out.textContent = ''; st.bytes = null; file.value = ''; });
        out.append(el('div', { class: 'card confirm', id: 'roster-unknown', role: 'group', 'aria-labelledby': 'roster-unknown-q' },
          el('p', { id: 'roster-unknown-q' }, KN.t('roster.unknown', { columns: names })),
          el('p', { class: 'hint' }, KN.t('roster.unknown_hint')),
          el('p', { class: 'actions' }, yes, no)));
        yes.focus();
        return;
      }
      if (j.error && !j.dry_run) { KN.error(root, said(j, 'error')); }
      if (r.status === 422) {
        // reason_ja names its row itself ("1行目（見出し）：…").
        const probs = (j.header_problems || []).map((p) => el('li', null,
          KN.lang === 'ja' && p.reason_ja ? p.reason_ja : KN.t('roster.line', { line: p.row || p.line }) + ' ' + p.reason));
        out.append(el('div', { id: 'roster-refused' }, el('p', { class: 'kn-error', role: 'alert' }, said(j, 'error') || KN.failText(r)),
          probs.length ? el('ul', null, probs) : null,
          j.decode_error ? el('p', null, said(j, 'decode_error')) : null));
        return;
      }
      if (j.written) {
        // KN.el leaves out the parts that are null (append would write "null").
        out.append(el('div', null, el('h3', null, KN.t('roster.done_h')), counts(j), badRows(j),
          j.no_contact > 0 ? el('p', { class: 'hint' }, KN.t('roster.no_contact', { n: j.no_contact })) : null));
        KN.notice(KN.t('roster.done', { added: j.added, updated: j.updated, deleted: j.deleted }));
        st.bytes = null;
        file.value = '';
        loadGroups();
        return;
      }
      const apply = el('button', { type: 'button', id: 'roster-apply' }, KN.t('roster.apply'));
      apply.addEventListener('click', async () => {
        apply.disabled = true;
        const r2 = await postCsv(query(false), st.bytes);
        show(r2);
      });
      out.append(el('div', null, el('h3', null, KN.t('roster.dry_h', { file: st.name, rows: j.rows })),
        el('p', { class: 'muted' }, KN.t('roster.dry_note')),
        counts(j), badRows(j),
        j.no_contact > 0 ? el('p', { class: 'hint', id: 'roster-no-contact' }, KN.t('roster.no_contact', { n: j.no_contact })) : null,
        j.skipped > 0 ? el('p', { class: 'hint' }, KN.t('roster.skip_note', { n: j.skipped })) : null,
        j.added + j.updated + j.deleted === 0 && j.skipped === 0
          ? el('p', null, KN.t('roster.nothing'))
          : el('p', { class: 'actions' }, apply)));
    }

    async function take(f) {
      if (!f) return;
      if (f.size > 10 * 1024 * 1024) { KN.error(root, KN.t('roster.too_big')); return; }
      st.name = f.name;
      st.ignore = [];
      st.result = null;
      st.bytes = await f.arrayBuffer();
      check();
    }

    file.addEventListener('change', () => take(file.files[0]));
    drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (ev) => {
      ev.preventDefault();
      drop.classList.remove('over');
      const f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
      take(f);
    });
    replace.addEventListener('change', () => { if (st.bytes) check(); });
  }

  // ------------------------------------------------------------ search

  function searchSection(root) {
    const q = el('input', { type: 'search', id: 'roster-q', name: 'q', autocomplete: 'off' });
    const form = el('form', { class: 'search', role: 'search', 'aria-label': KN.t('roster.search') },
      el('div', { class: 'row' }, field('roster-q', KN.t('roster.q'), q),
        el('p', { class: 'field' }, el('button', { type: 'submit' }, KN.t('roster.search_go')))));
    const list = el('div', { id: 'roster-found', 'aria-live': 'polite' });
    root.append(el('section', { 'aria-labelledby': 'roster-search-h' },
      el('h2', { id: 'roster-search-h' }, KN.t('roster.search')), form, list));

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const text = q.value.trim();
      list.textContent = '';
      if (!text) return;
      let r = await KN.api('GET', '/v1/directory?limit=50&q=' + encodeURIComponent(text)).catch(() => ({ status: 0 }));
      // An exact id opens that student even where search is not served.
      if (r.status === 404 && /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(text)) {
        const one = await KN.api('GET', '/v1/directory/' + encodeURIComponent(text)).catch(() => ({ status: 0 }));
        if (one.status === 200 && one.json) r = { status: 200, json: { recipients: [one.json] } };
      }
      if (r.status !== 200 || !r.json) {
        list.append(el('p', { class: 'kn-error', role: 'alert' }, r.status === 404 ? KN.t('roster.search_missing') : KN.failText(r)));
        return;
      }
      const rows = r.json.recipients || [];
      if (!rows.length) { list.append(el('p', null, KN.t('roster.none'))); return; }
      const tb = el('tbody');
      for (const s of rows) {
        const edit = el('button', { type: 'button', class: 'secondary', 'aria-label': KN.t('roster.edit_who', { name: s.name || s.id }) }, KN.t('roster.edit'));
        edit.addEventListener('click', () => editor(list, s.id, edit));
        tb.append(el('tr', null,
          el('td', { 'data-label': 'ID' }, s.id),
          el('td', { 'data-label': KN.t('roster.col.name') }, s.name || ''),
          el('td', { 'data-label': KN.t('roster.col.class') }, s.class || ''),
          el('td', { 'data-label': KN.t('roster.col.groups') }, (s.groups || []).join('、')),
          el('td', { 'data-label': KN.t('roster.col.state') }, s.active === false ? KN.t('roster.inactive') : ''),
          el('td', null, edit)));
      }
      list.append(el('table', { class: 'cards', id: 'roster-list' },
        el('caption', { class: 'sr-only' }, KN.t('roster.search')),
        el('thead', null, el('tr', null, ['ID', KN.t('roster.col.name'), KN.t('roster.col.class'), KN.t('roster.col.groups'), KN.t('roster.col.state'), KN.t('roster.col.edit')].map((h) =>
          el('th', { scope: 'col' }, h)))), tb));
    });
  }

  // One guardian of the card: name, e-mail, phone (only what is typed is
  // sent), deactivate or reactivate, and its suppression if any.
  function guardianBox(g, i, patch, unsuppress) {
    const p = 're-g' + i + '-';
    const label = g.name || KN.t('roster.guardian_n', { n: i + 1 });
    const gname = el('input', { type: 'text', id: p + 'name', name: 'name', value: g.name || '', autocomplete: 'off' });
    const email = el('input', { type: 'email', id: p + 'email', name: 'email', autocomplete: 'off', spellcheck: 'false',
      placeholder: g.email || '' });
    const phone = el('input', { type: 'tel', id: p + 'phone', name: 'phone', autocomplete: 'off' });
    const save = el('button', { type: 'button', 'data-guardian-save': String(i),
      'aria-label': KN.t('roster.g_save_who', { name: label }) }, KN.t('roster.g_save'));
    const b = el('button', { type: 'button', class: g.active ? 'danger' : 'secondary', 'data-guardian': String(i) },
      g.active ? KN.t('roster.g_deactivate') : KN.t('roster.g_activate'));
    b.addEventListener('click', () => patch({ guardians: [{ index: i, active: !g.active }] }));
    save.addEventListener('click', () => {
      const one = { index: i };
      if (gname.value.trim() && gname.value.trim() !== (g.name || '')) one.name = gname.value.trim();
      if (email.value.trim()) one.email = email.value.trim();
      if (phone.value.trim()) one.phone = phone.value.trim();
      if (Object.keys(one).length === 1) { KN.notice(KN.t('roster.g_nothing')); return; }
      patch({ guardians: [one] });
    });
    let supp = null;
    if (g.suppression) {
      const clear = el('button', { type: 'button', class: 'secondary', 'data-unsuppress': String(i) }, KN.t('roster.supp_clear'));
      clear.addEventListener('click', () => unsuppress(g.suppression.ref));
      supp = el('div', { class: 'suppressed', 'data-suppressed': String(i) },
        el('p', null, el('strong', null, KN.t('roster.supp') + '：'),
          (KN.lang === 'ja' ? g.suppression.reason_ja : g.suppression.reason) || '',
          g.suppression.since_ms ? '（' + KN.fmtDate(g.suppression.since_ms) + '）' : ''),
        el('p', { class: 'hint' }, KN.t('roster.supp_hint')), el('p', null, clear));
    }
    return el('li', null, el('fieldset', { class: 'guardian' },
      el('legend', null, label + ' — ' + (g.channels || []).join(', ') + (g.active ? '' : '（' + KN.t('roster.inactive') + '）')),
      supp,
      field(p + 'name', KN.t('roster.g_name'), gname),
      field(p + 'email', KN.t('roster.g_email'), email,
        g.email ? KN.t('roster.g_email_now', { email: g.email }) : KN.t('roster.g_email_none')),
      field(p + 'phone', KN.t('roster.g_phone'), phone, g.phone ? KN.t('roster.g_phone_set') : null),
      el('p', { class: 'hint' }, KN.t('roster.g_import_only')),
      el('p', { class: 'actions' }, save, b)));
  }

  // One student's record: edit, deactivate or reactivate (and each
  // guardian: its contacts, deactivate or reactivate).
  async function editor(where, id, opener) {
    const old = document.getElementById('roster-edit');
    if (old) old.remove();
    const r = await KN.api('GET', '/v1/directory/' + encodeURIComponent(id)).catch(() => ({ status: 0 }));
    if (r.status !== 200 || !r.json) { KN.error(where.closest('main'), KN.failText(r)); return; }
    const s = r.json;
    const name = el('input', { type: 'text', id: 're-name', value: s.name || '' });
    const cls = el('input', { type: 'text', id: 're-class', value: s.class || '' });
    const groups = el('input', { type: 'text', id: 're-groups', value: (s.groups || []).join(';') });
    const save = el('button', { type: 'submit' }, KN.t('roster.save'));
    const toggle = el('button', { type: 'button', class: s.active ? 'danger' : 'secondary', id: 're-active' },
      s.active ? KN.t('roster.deactivate') : KN.t('roster.activate'));
    const close = el('button', { type: 'button', class: 'secondary' }, KN.t('roster.close'));
    const gl = el('ul', { id: 're-guardians' });
    (s.guardians || []).forEach((g) => gl.append(guardianBox(g, g.index, patch, unsuppress)));
    const form = el('form', { class: 'card', id: 'roster-edit', 'aria-labelledby': 're-h' },
      el('h3', { id: 're-h' }, KN.t('roster.edit_h', { id: s.id })),
      el('p', null, s.active ? KN.t('roster.active') : KN.t('roster.inactive')),
      field('re-name', KN.t('roster.col.name'), name),
      field('re-class', KN.t('roster.col.class'), cls),
      field('re-groups', KN.t('roster.col.groups'), groups, KN.t('roster.groups_hint')),
      el('p', { class: 'actions' }, save, toggle, close),
      (s.guardians || []).length ? el('h4', null, KN.t('roster.guardians')) : null, gl);
    where.append(form);
    name.focus();

    async function patch(body) {
      const p = await KN.api('PATCH', '/v1/directory/' + encodeURIComponent(s.id), body).catch(() => ({ status: 0 }));
      if (p.status !== 200) { KN.error(where.closest('main'), KN.failText(p)); return; }
      KN.notice(KN.t('roster.saved', { id: s.id }));
      form.remove();
      editor(where, id, opener);
    }
    async function unsuppress(ref) {
      const p = await KN.api('DELETE', '/v1/suppressions/' + encodeURIComponent(ref)).catch(() => ({ status: 0 }));
      if (p.status !== 200) { KN.error(where.closest('main'), KN.failText(p)); return; }
      KN.notice(KN.t('roster.supp_cleared'));
      form.remove();
      editor(where, id, opener);
    }
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      patch({ name: name.value.trim(), class: cls.value.trim(),
        groups: groups.value.split(/[;；]/).map((x) => x.trim()).filter((x) => x) });
    });
    toggle.addEventListener('click', () => patch({ active: !s.active }));
    close.addEventListener('click', () => { form.remove(); if (opener && opener.isConnected) opener.focus(); });
  }

  // ------------------------------------------------------------ groups

  let groupsBox = null;
  async function loadGroups() {
    if (!groupsBox || !groupsBox.isConnected) return;
    const r = await KN.api('GET', '/v1/groups').catch(() => ({ status: 0 }));
    groupsBox.textContent = '';
    if (r.status !== 200 || !r.json) {
      groupsBox.append(el('p', { class: 'muted' }, r.status === 404 ? KN.t('roster.groups_missing') : KN.failText(r)));
      return;
    }
    const gs = r.json.groups || [];
    if (!gs.length) { groupsBox.append(el('p', null, KN.t('roster.groups_none'))); return; }
    groupsBox.append(el('ul', { class: 'stats', id: 'roster-groups' }, gs.map((g) =>
      el('li', null, el('span', { class: 'big num' }, String(g.members)), g.name))));
  }

  KN.page('roster', (root) => {
    root.append(el('h1', null, KN.t('roster.title')));
    const admin = KN.me && (KN.me.role === 'admin' || KN.me.role === 'limited_admin');
    if (admin) importSection(root);
    if (admin && KN.rosterSignup) KN.rosterSignup(root); // signup.js
    searchSection(root);
    groupsBox = el('div', { id: 'roster-groups-box' });
    root.append(el('section', { 'aria-labelledby': 'roster-groups-h' },
      el('h2', { id: 'roster-groups-h' }, KN.t('roster.groups')), groupsBox));
    loadGroups();
  });
})();
