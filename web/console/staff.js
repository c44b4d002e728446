// staff.js - 職員 (#staff, admins): the school's staff accounts
// (GET/POST /v1/staff; POST /v1/staff/{login}/deactivate|reset|role|groups)
// and the operation and login logs (GET /v1/logs/operations|logins, by
// JST date and person, in pages).  An initial password is shown once, in
// the page only, with the account it belongs to.  Every value goes into
// textContent only.
'use strict';

(function () {
  const el = (...a) => KN.el(...a);
  const ROLES = ['admin', 'limited_admin', 'sender', 'operator'];
  const field = (id, label, input, hint) => el('p', { class: 'field' },
    el('label', { for: id }, label), hint ? el('span', { class: 'hint', id: id + '-hint' }, hint) : null, input);
  const roleSelect = (id, value) => el('select', { id: id, name: 'role' },
    ROLES.map((r) => el('option', { value: r, selected: r === value }, KN.t('common.role.' + r))));
  const splitGroups = (s) => s.split(/[,、，;；]/).map((x) => x.trim()).filter((x) => x);

  function showPassword(box, login, pw) {
    box.textContent = '';
    box.append(el('div', { class: 'card confirm', id: 'staff-pw', role: 'status' },
      el('p', null, KN.t('staff.pw_once', { login: login })),
      el('p', { class: 'password' }, el('code', { id: 'staff-pw-value' }, pw)),
      el('p', { class: 'hint' }, KN.t('staff.pw_hint'))));
  }

  function accounts(root) {
    const box = el('div', { id: 'staff-accounts' });
    const pwBox = el('div', { 'aria-live': 'polite' });
    const login = el('input', { type: 'text', id: 'st-login', name: 'login', autocomplete: 'off', autocapitalize: 'none', spellcheck: false });
    const name = el('input', { type: 'text', id: 'st-name', name: 'name', autocomplete: 'off' });
    const role = roleSelect('st-role', 'sender');
    const groups = el('input', { type: 'text', id: 'st-groups', name: 'groups', autocomplete: 'off' });
    const add = el('form', { class: 'card', id: 'staff-add', 'aria-labelledby': 'staff-add-h' },
      el('h3', { id: 'staff-add-h' }, KN.t('staff.add')),
      field('st-login', KN.t('staff.login'), login, KN.t('staff.login_hint')),
      field('st-name', KN.t('staff.name'), name),
      field('st-role', KN.t('staff.role'), role),
      field('st-groups', KN.t('staff.groups'), groups, KN.t('staff.groups_hint')),
      el('p', null, el('button', { type: 'submit' }, KN.t('staff.add_go'))));
    root.append(el('section', { 'aria-labelledby': 'staff-acc-h' },
      el('h2', { id: 'staff-acc-h' }, KN.t('staff.accounts')), pwBox, box, add));

    add.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { login: login.value.trim(), name: name.value.trim(), role: role.value };
      if (role.value === 'sender') body.groups = splitGroups(groups.value);
      const r = await KN.api('POST', '/v1/staff', body).catch(() => ({ status: 0 }));
      if (r.status !== 201 || !r.json) { KN.error(root, (r.json && r.json.error) || KN.failText(r)); return; }
      KN.error(root, '');
      showPassword(pwBox, r.json.login, r.json.password);
      login.value = ''; name.value = ''; groups.value = '';
      load();
    });

    async function act(acc, what, body, confirmText) {
      if (confirmText && !window.confirm(confirmText)) return;
      const r = await KN.api('POST', '/v1/staff/' + encodeURIComponent(acc.login) + '/' + what, body).catch(() => ({ status: 0 }));
      if (r.status !== 200 || !r.json) { KN.error(root, (r.json && r.json.error) || KN.failText(r)); return; }
      KN.error(root, '');
      if (r.json.password) showPassword(pwBox, acc.login, r.json.password);
      else KN.notice(KN.t('staff.done', { login: acc.login }));
      load();
    }

    function row(acc) {
      const isMe = KN.me && KN.me.login === acc.login;
      const sel = roleSelect('st-r-' + acc.login, acc.role);
      sel.setAttribute('aria-label', KN.t('staff.role_of', { login: acc.login }));
      const gin = el('input', { type: 'text', value: (acc.groups || []).join(', '), 'aria-label': KN.t('staff.groups_of', { login: acc.login }) });
      const setRole = el('button', { type: 'button', class: 'secondary' }, KN.t('staff.set_role'));
      setRole.addEventListener('click', () => {
        const b = { role: sel.value };
        if (sel.value === 'sender') b.groups = splitGroups(gin.value);
        act(acc, 'role', b);
      });
      const setGroups = el('button', { type: 'button', class: 'secondary' }, KN.t('staff.set_groups'));
      setGroups.addEventListener('click', () => act(acc, 'groups', { groups: splitGroups(gin.value) }));
      const reset = el('button', { type: 'button', class: 'secondary' }, KN.t('staff.reset'));
      reset.addEventListener('click', () => act(acc, 'reset', undefined, KN.t('staff.reset_q', { login: acc.login })));
      const off = el('button', { type: 'button', class: 'danger', disabled: isMe || acc.state === 'deactivated' }, KN.t('staff.deactivate'));
      off.addEventListener('click', () => act(acc, 'deactivate', undefined, KN.t('staff.deactivate_q', { login: acc.login })));
      return el('tr', null,
        el('td', { 'data-label': KN.t('staff.login') }, acc.login),
        el('td', { 'data-label': KN.t('staff.name') }, acc.name || ''),
        el('td', { 'data-label': KN.t('staff.role') }, KN.t('common.role.' + acc.role)),
        el('td', { 'data-label': KN.t('staff.groups') }, (acc.groups || []).join('、')),
        el('td', { 'data-label': KN.t('staff.state') }, KN.t('staff.st.' + acc.state)),
        el('td', { class: 'acts' },
          el('div', { class: 'row' }, sel, setRole),
          el('div', { class: 'row' }, gin, setGroups),
          el('div', { class: 'row' }, reset, off)));
    }

    async function load() {
      const r = await KN.api('GET', '/v1/staff').catch(() => ({ status: 0 }));
      box.textContent = '';
      if (r.status !== 200 || !r.json) { box.append(el('p', { class: 'kn-error', role: 'alert' }, KN.failText(r))); return; }
      const tb = el('tbody');
      for (const a of r.json.staff || []) tb.append(row(a));
      box.append(el('table', { class: 'cards', id: 'staff-list' },
        el('caption', { class: 'sr-only' }, KN.t('staff.accounts')),
        el('thead', null, el('tr', null, ['login', 'name', 'role', 'groups', 'state'].map((k) =>
          el('th', { scope: 'col' }, KN.t('staff.' + k))), el('th', { scope: 'col' }, KN.t('staff.actions')))),
        tb));
    }
    load();
  }

  function logs(root) {
    const which = el('select', { id: 'lg-which', name: 'log' },
      el('option', { value: 'operations' }, KN.t('staff.log.operations')),
      el('option', { value: 'logins' }, KN.t('staff.log.logins')));
    const from = el('input', { type: 'date', id: 'lg-from', name: 'from' });
    const to = el('input', { type: 'date', id: 'lg-to', name: 'to' });
    const person = el('input', { type: 'text', id: 'lg-person', name: 'person', autocomplete: 'off', autocapitalize: 'none' });
    const form = el('form', { class: 'search', role: 'search', 'aria-label': KN.t('staff.logs') },
      el('div', { class: 'row' },
        field('lg-which', KN.t('staff.log.which'), which), field('lg-from', KN.t('staff.log.from'), from),
        field('lg-to', KN.t('staff.log.to'), to), field('lg-person', KN.t('staff.log.person'), person),
        el('p', { class: 'field' }, el('button', { type: 'submit' }, KN.t('staff.log.go')))));
    const tb = el('tbody');
    const table = el('table', { class: 'cards', id: 'staff-log' },
      el('caption', { class: 'sr-only' }, KN.t('staff.logs')),
      el('thead', null, el('tr', null, ['time', 'who', 'what', 'detail'].map((k) =>
        el('th', { scope: 'col' }, KN.t('staff.log.col.' + k))))), tb);
    const more = el('button', { type: 'button', class: 'secondary', hidden: true }, KN.t('common.more'));
    const count = el('p', { class: 'muted', role: 'status', id: 'staff-log-count' });
    root.append(el('section', { 'aria-labelledby': 'staff-log-h' },
      el('h2', { id: 'staff-log-h' }, KN.t('staff.logs')), form, count,
      el('div', { class: 'table-wrap' }, table), el('p', null, more)));
    let cursor = null;
    let shown = 0;

    const SKIP = ['time', 'actor', 'op', 'tenant', 'token', 'login', 'by', 'source', 'via', 'method', 'path', 'result', 'status', 'role'];
    // Who acted: a staff session's login ("by" when "login" is the account
    // acted on), else the actor (kairanctl:<user>, token:<id>).
    function who(l) {
      if (l.by) return l.by;
      if (/^token:/.test(l.actor || '') && l.login) return l.login;
      return l.actor || l.login || l.token || '';
    }
    function detail(l) {
      if (which.value === 'logins') return `${l.method || ''} ${l.path || ''} → ${l.status || ''} ${l.result || ''}`;
      const parts = l.login && l.login !== who(l) ? ['login=' + l.login] : [];
      for (const [k, v] of Object.entries(l)) {
        if (SKIP.indexOf(k) >= 0 || v === null || typeof v === 'object') continue;
        parts.push(k + '=' + String(v));
      }
      return parts.join(' ');
    }

    async function fetchPage(first) {
      if (first) { tb.textContent = ''; cursor = null; shown = 0; }
      const q = ['limit=100'];
      if (from.value) q.push('from=' + from.value);
      if (to.value) q.push('to=' + to.value);
      if (person.value.trim()) q.push('person=' + encodeURIComponent(person.value.trim()));
      if (cursor !== null) q.push('cursor=' + cursor);
      const r = await KN.api('GET', '/v1/logs/' + which.value + '?' + q.join('&')).catch(() => ({ status: 0 }));
      if (r.status !== 200 || !r.json) { KN.error(root, (r.json && r.json.error) || KN.failText(r)); return; }
      KN.error(root, '');
      for (const l of r.json.lines || []) {
        tb.append(el('tr', null,
          el('td', { 'data-label': KN.t('staff.log.col.time') }, KN.fmtDate(l.time)),
          el('td', { 'data-label': KN.t('staff.log.col.who') }, which.value === 'logins' ? (l.login || l.token || '') : who(l)),
          el('td', { 'data-label': KN.t('staff.log.col.what') }, l.op || l.result || ''),
          el('td', { 'data-label': KN.t('staff.log.col.detail') }, detail(l))));
        shown++;
      }
      cursor = r.json.next_cursor;
      more.hidden = cursor === null || cursor === undefined;
      count.textContent = KN.t('staff.log.count', { n: shown });
    }
    form.addEventListener('submit', (ev) => { ev.preventDefault(); fetchPage(true); });
    more.addEventListener('click', () => fetchPage(false));
    fetchPage(true);
  }

  KN.page('staff', (root) => {
    root.append(el('h1', null, KN.t('staff.title')));
    if (!KN.me || (KN.me.role !== 'admin' && KN.me.role !== 'limited_admin')) {
      root.append(el('p', null, KN.t('staff.admins_only')));
      return;
    }
    accounts(root);
    logs(root);
  });
})();
