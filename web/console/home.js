// home.js - ホーム (#home): the tenant's broadcasts, newest first, in pages
// (GET /v1/broadcasts?from&to&cursor).  The date range goes to the server;
// the subject text and the category filter the rows fetched so far (the
// note under the form says so: "さらに表示" fetches older ones).  Sender,
// drill mark and confirmation rate come from each broadcast's own answer
// (GET /v1/broadcasts/{name}), fetched only for the rows on screen.
'use strict';

(function () {
  const PAGE = 25;
  const CATS = ['notice', 'event', 'emergency', 'drill'];

  // A known category in the user's language, others as they are.
  function catName(c) {
    return CATS.indexOf(c) >= 0 ? KN.t('home.cat.' + c) : (c || '');
  }

  function statusName(b) {
    if (b.status === 'rejected') return KN.t('home.st.rejected');
    if (b.status === 'cancelled') return KN.t('home.st.cancelled');
    if (b.ended) return KN.t('home.st.done');
    if (b.status === 'scheduled' || (b.status === 'queued' && !b.jobs)) return KN.t('home.st.queued');
    return KN.t('home.st.sending');
  }

  // "2026-12-05" (a date input) as the start or end of that JST day.
  const dayStart = (d) => d + 'T00:00:00+09:00';
  const dayEnd = (d) => d + 'T23:59:59+09:00';

  KN.page('home', (root) => {
    const el = KN.el;
    root.append(el('h1', null, KN.t('home.title')));
    const from = el('input', { type: 'date', id: 'home-from', name: 'from' });
    const to = el('input', { type: 'date', id: 'home-to', name: 'to' });
    const text = el('input', { type: 'search', id: 'home-q', name: 'q', autocomplete: 'off' });
    const cat = el('select', { id: 'home-cat', name: 'category' }, el('option', { value: '' }, KN.t('home.cat.all')));
    const f = (id, label, input) => el('p', { class: 'field' }, el('label', { for: id }, label), input);
    const form = el('form', { class: 'search', role: 'search', 'aria-label': KN.t('home.search') },
      el('div', { class: 'row' },
        f('home-from', KN.t('home.from'), from), f('home-to', KN.t('home.to'), to),
        f('home-q', KN.t('home.subject'), text), f('home-cat', KN.t('home.category'), cat),
        el('p', { class: 'field' }, el('button', { type: 'submit' }, KN.t('home.search_go')))),
      el('p', { class: 'hint' }, KN.t('home.filter_note')));
    const count = el('p', { class: 'muted', id: 'home-count', role: 'status' });
    const tbody = el('tbody');
    const table = el('table', { class: 'cards', id: 'home-list' },
      el('caption', { class: 'sr-only' }, KN.t('home.caption')),
      el('thead', null, el('tr', null,
        ['subject', 'category', 'sender', 'date', 'progress', 'confirmed'].map((k) =>
          el('th', { scope: 'col' }, KN.t('home.col.' + k))))),
      tbody);
    const more = el('button', { type: 'button', class: 'secondary', id: 'home-more', hidden: true }, KN.t('common.more'));
    root.append(el('p', { class: 'actions' }, el('a', { href: '#compose', class: 'button' }, KN.t('common.nav.compose'))),
      form, count, el('div', { class: 'table-wrap' }, table), el('p', null, more));

    let rows = []; // broadcasts fetched (summaries), newest first
    let cursor = null;
    let gen = 0;
    let alive = true;
    const detail = {}; // name -> full answer (or a Promise of it)
    const cells = new Map(); // name -> the row's cells to fill lazily

    function matches(b) {
      const q = text.value.trim().toLowerCase();
      if (q && (b.subject || '').toLowerCase().indexOf(q) < 0) return false;
      if (cat.value && b.category !== cat.value) return false;
      return true;
    }

    function fillDetail(name, d) {
      const c = cells.get(name);
      if (!c || !d) return;
      c.sender.textContent = d.sender || '';
      if (d.drill) c.tags.append(' ', el('span', { class: 'tag drill' }, KN.t('home.drill')));
      if (d.ack && d.ack.recipients) {
        const pct = Math.round(100 * d.ack.confirmed / d.ack.recipients);
        c.conf.textContent = KN.t('home.rate', { pct: pct, n: d.ack.confirmed, total: d.ack.recipients });
      } else {
        c.conf.textContent = d.ack ? '0%' : KN.t('home.no_ack');
      }
    }

    // The rows on screen ask for their details, four at a time.
    const want = [];
    let running = 0;
    function pump() {
      while (alive && running < 4 && want.length) {
        const name = want.shift();
        if (detail[name]) { fillDetail(name, detail[name]); continue; }
        running++;
        KN.api('GET', '/v1/broadcasts/' + encodeURIComponent(name)).then((r) => {
          if (r.status === 200) { detail[name] = r.json; fillDetail(name, r.json); }
        }, () => {}).finally(() => { running--; pump(); });
      }
    }
    const seen = new IntersectionObserver((ents) => {
      for (const e of ents) {
        if (!e.isIntersecting) continue;
        seen.unobserve(e.target);
        want.push(e.target.dataset.name);
      }
      pump();
    });

    function draw() {
      tbody.textContent = '';
      cells.clear();
      seen.disconnect();
      const shown = rows.filter(matches);
      for (const b of shown) {
        const pct = b.percent || 0;
        const bar = el('span', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct, 'aria-label': KN.t('home.col.progress') }, el('span'));
        bar.firstChild.style.width = pct + '%';
        const c = { sender: el('span'), conf: el('span', { class: 'conf' }, '…'), tags: el('span') };
        if (b.priority === 'urgent') c.tags.append(' ', el('span', { class: 'tag urgent' }, KN.t('home.urgent')));
        cells.set(b.id, c);
        const tr = el('tr', { 'data-name': b.id },
          el('td', { 'data-label': KN.t('home.col.subject') },
            el('a', { href: '#b/' + encodeURIComponent(b.id) }, b.subject || KN.t('home.no_subject'))),
          el('td', { 'data-label': KN.t('home.col.category') }, catName(b.category), c.tags),
          el('td', { 'data-label': KN.t('home.col.sender') }, c.sender),
          el('td', { 'data-label': KN.t('home.col.date') }, KN.fmtDate(b.created)),
          el('td', { 'data-label': KN.t('home.col.progress') }, el('span', { class: 'status' }, statusName(b)), ' ', pct + '%', bar),
          el('td', { 'data-label': KN.t('home.col.confirmed') }, c.conf));
        tbody.append(tr);
        if (detail[b.id] && !(detail[b.id] instanceof Promise)) fillDetail(b.id, detail[b.id]);
        else seen.observe(tr);
      }
      count.textContent = KN.t('home.count', { shown: shown.length, fetched: rows.length });
      more.hidden = !cursor;
    }

    function categories() {
      const have = new Set(CATS);
      rows.forEach((b) => b.category && have.add(b.category));
      const cur = cat.value;
      cat.textContent = '';
      cat.append(el('option', { value: '' }, KN.t('home.cat.all')));
      for (const c of have) cat.append(el('option', { value: c }, catName(c)));
      cat.value = cur;
    }

    async function load(reset) {
      const g = reset ? ++gen : gen;
      const q = ['limit=' + PAGE];
      if (from.value) q.push('from=' + encodeURIComponent(dayStart(from.value)));
      if (to.value) q.push('to=' + encodeURIComponent(dayEnd(to.value)));
      if (!reset && cursor) q.push('cursor=' + encodeURIComponent(cursor));
      more.disabled = true;
      const r = await KN.api('GET', '/v1/broadcasts?' + q.join('&')).catch(() => ({ status: 0 }));
      more.disabled = false;
      if (!alive || g !== gen) return;
      if (r.status !== 200 || !r.json) { KN.error(root, KN.failText(r)); return; }
      KN.error(root, '');
      if (reset) rows = [];
      rows = rows.concat(r.json.broadcasts || []);
      cursor = r.json.next_cursor || null;
      categories();
      draw();
    }

    form.addEventListener('submit', (ev) => { ev.preventDefault(); load(true); });
    text.addEventListener('input', draw);
    cat.addEventListener('change', draw);
    more.addEventListener('click', () => load(false));
    load(true);
    return () => { alive = false; seen.disconnect(); };
  });
})();
