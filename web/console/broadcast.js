// broadcast.js - 配信状況 (#b/<name>): one broadcast.  Its counts per
// channel (GET /v1/broadcasts/{name}, polled every 2.5 s until it ends),
// its children per class and the not reached / not confirmed lists to
// phone, the answers and comments (GET .../recipients, every page, read
// again every few polls), cancel, re-send (POST .../resend), the CSV
// export and a print view (console.css @media print).  A child's
// e-mail that bounced or was suppressed (issue 18) is listed with the
// teacher's reason; 電話番号を表示 reads one child's whole numbers
// (GET .../recipients/{rcpt}/phones, logged) and shows them as tel: links.
'use strict';

(function () {
  const POLL_MS = 2500;
  const RCPTS_EVERY = 4; // polls between two reads of the recipients

  const REACHED = ['reached', 'reached_via_sibling'];
  const el = (...a) => KN.el(...a);

  // Over: ended, or cancelled with nothing left in flight (a cancelled
  // scheduled broadcast never gets an end time).
  const over = (b) => b.ended || (b.status === 'cancelled' && !(b.jobs > b.final));

  function sum(counts, state) {
    let n = 0;
    for (const ch of Object.keys(counts || {})) n += counts[ch][state] || 0;
    return n;
  }

  // Every page of the recipients, one row per delivery: by child.
  async function children(name, background) {
    const kids = new Map();
    let cursor = null;
    for (let i = 0; i < 1000; i++) {
      const q = '?limit=500' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
      const r = await KN.api('GET', '/v1/broadcasts/' + encodeURIComponent(name) + '/recipients' + q, undefined, background);
      if (r.status !== 200 || !r.json) return { error: r };
      for (const row of r.json.recipients || []) {
        let k = kids.get(row.recipient);
        if (!k) {
          k = { id: row.recipient, child: row.child, class: row.class, guardians: [], channels: [],
            phone: row.phone, state: row.child_state, confirmed: row.confirmed_at,
            answer: row.answer, comment: row.comment, bounces: [],
            confirmedBy: row.confirmed_by, sentTo: row.sent_to };
          kids.set(row.recipient, k);
        }
        if (row.guardian && k.guardians.indexOf(row.guardian) < 0) k.guardians.push(row.guardian);
        if (row.channel && k.channels.indexOf(row.channel) < 0) k.channels.push(row.channel);
        if (row.state === 'bounced' || row.state === 'suppressed' || row.state === 'opted_out') {
          const why = (KN.lang === 'ja' ? row.reason_ja : row.reason) || row.reason || '';
          k.bounces.push({ state: row.state, reason: why });
        }
      }
      cursor = r.json.next_cursor;
      if (!cursor) break;
    }
    return { kids: Array.from(kids.values()) };
  }

  function stat(label, value, id) {
    return el('li', { id: id }, el('span', { class: 'label' }, label), ' ', el('span', { class: 'big' }, String(value)));
  }

  function table(id, caption, heads, rows) {
    return el('div', { class: 'table-wrap' }, el('table', { class: 'cards', id: id },
      el('caption', { class: 'sr-only' }, caption),
      el('thead', null, el('tr', null, heads.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', null, rows.map((r) => el('tr', null,
        r.map((v, i) => el('td', { 'data-label': heads[i], class: typeof v === 'number' ? 'num' : null }, v)))))));
  }

  KN.page('b', (root, name) => {
    const t = KN.t;
    root.append(el('h1', null, t('bc.title')));
    const head = el('div', { id: 'bc-head' }, el('p', { class: 'muted' }, t('common.loading')));
    const stats = el('ul', { class: 'stats', id: 'bc-stats' });
    const actions = el('div', { class: 'actions', id: 'bc-actions' });
    const confirmBox = el('div', { id: 'bc-confirm', role: 'group' });
    const chans = el('section', { id: 'bc-channels' });
    const classes = el('section', { id: 'bc-classes' });
    const lists = el('section', { id: 'bc-lists' });
    const answers = el('section', { id: 'bc-answers' });
    root.append(head, stats, actions, confirmBox, chans, classes, answers, lists);

    let alive = true;
    let timer = null;
    let polls = 0;
    let bc = null;
    let kids = null;
    let busy = false;
    let drawn = ''; // the state the head and actions were drawn for

    function drawHead() {
      head.textContent = '';
      const meta = [
        [t('bc.status'), bc.status === 'cancelled' ? t('home.st.cancelled') : bc.status === 'rejected' ? t('home.st.rejected')
          : bc.ended ? t('home.st.done') : bc.status === 'scheduled' ? t('home.st.queued') : t('home.st.sending')],
        [t('home.col.category'), ['notice', 'event', 'emergency', 'drill'].indexOf(bc.category) >= 0 ? t('home.cat.' + bc.category) : (bc.category || '')],
        [t('home.col.sender'), bc.sender || ''],
        [t('bc.created'), KN.fmtDate(bc.created)],
      ];
      if (bc.send_at) meta.push([t('bc.send_at'), KN.fmtDate(bc.send_at)]);
      if (bc.done) meta.push([t('bc.done'), KN.fmtDate(bc.done)]);
      meta.push([t('bc.expires'), KN.fmtDate(bc.expires)]);
      const dl = el('dl', { class: 'meta' });
      for (const [k, v] of meta) dl.append(el('div', null, el('dt', null, k), el('dd', null, v)));
      head.append(el('h2', { id: 'bc-subject' }, bc.subject,
        bc.drill ? [' ', el('span', { class: 'tag drill' }, t('home.drill'))] : null,
        bc.priority === 'urgent' ? [' ', el('span', { class: 'tag urgent' }, t('home.urgent'))] : null),
      dl, el('details', null, el('summary', null, t('bc.body')), el('pre', { class: 'body' }, bc.body || '')),
      el('pre', { class: 'body print-only' }, bc.body || ''));
    }

    function drawStats() {
      stats.textContent = '';
      const c = bc.counts || {};
      stats.append(stat(t('bc.delivered'), sum(c, 'delivered'), 'bc-delivered'));
      if (bc.ack) stats.append(stat(t('bc.confirmed'), bc.ack.confirmed, 'bc-confirmed'));
      stats.append(stat(t('bc.pending'), sum(c, 'pending'), 'bc-pending'),
        stat(t('bc.failed'), sum(c, 'failed') + sum(c, 'expired'), 'bc-failed'));
      if (sum(c, 'bounced') + sum(c, 'suppressed') > 0) {
        stats.append(stat(t('bc.bounced'), sum(c, 'bounced'), 'bc-bounced'),
          stat(t('bc.suppressed'), sum(c, 'suppressed'), 'bc-suppressed'));
      }
      // issue 16: guardians who opted out of this category (not sent)
      if (sum(c, 'opted_out') > 0) stats.append(stat(t('bc.opted_out'), sum(c, 'opted_out'), 'bc-opted-out'));
      if (!bc.ack) stats.append(el('li', { class: 'muted' }, t('bc.no_ack')));
      chans.textContent = '';
      const rows = Object.keys(c).map((ch) => [t('bc.ch.' + ch), c[ch].total, c[ch].delivered, c[ch].pending, c[ch].failed, c[ch].expired, c[ch].cancelled, c[ch].bounced || 0, c[ch].suppressed || 0]);
      chans.append(el('h2', null, t('bc.by_channel')),
        rows.length ? table('bc-ch-table', t('bc.by_channel'), [t('bc.channel'), t('bc.total'), t('bc.delivered'), t('bc.pending'), t('bc.failed'), t('bc.expired'), t('bc.cancelled'), t('bc.bounced'), t('bc.suppressed')], rows)
          : el('p', { class: 'muted' }, t('bc.no_jobs')));
      if (bc.ack) {
        answers.textContent = '';
        answers.append(el('h2', null, t('bc.answers')));
        const ul = el('ul', { id: 'bc-tally' });
        for (const a of bc.ack.answers || []) ul.append(el('li', null, a.choice, '：', String(a.count)));
        if (bc.ack.answers && bc.ack.answers.length) ul.append(el('li', null, t('bc.unanswered'), '：', String(bc.ack.unanswered)));
        answers.append(ul);
        const withComment = (kids || []).filter((k) => k.comment);
        if (withComment.length) {
          answers.append(table('bc-comments', t('bc.comments'), [t('bc.child'), t('bc.class'), t('bc.answer'), t('bc.comment')],
            withComment.map((k) => [k.child || k.id, k.class || '', k.answer || '', k.comment])));
        }
      }
    }

    function drawKids() {
      classes.textContent = '';
      lists.textContent = '';
      if (!kids) return;
      const by = new Map();
      for (const k of kids) {
        const c = k.class || t('bc.no_class');
        const v = by.get(c) || { n: 0, reached: 0, confirmed: 0 };
        v.n++;
        if (REACHED.indexOf(k.state) >= 0) v.reached++;
        if (k.confirmed) v.confirmed++;
        by.set(c, v);
      }
      const heads = [t('bc.class'), t('bc.children'), t('bc.reached')].concat(bc.ack ? [t('bc.confirmed')] : []);
      classes.append(el('h2', null, t('bc.by_class')), table('bc-class-table', t('bc.by_class'), heads,
        Array.from(by.keys()).sort().map((c) => [c, by.get(c).n, by.get(c).reached].concat(bc.ack ? [by.get(c).confirmed] : []))));
      const person = (k) => [k.child || k.id, k.class || '', k.guardians.join('、'),
        k.channels.map((c) => t('bc.ch.' + c)).join('、') || t('bc.state.' + k.state),
        k.bounces.map((b) => t('bc.state.' + b.state) + '：' + b.reason).join(' / ') || null, phoneCell(k)];
      const heads2 = [t('bc.child'), t('bc.class'), t('bc.guardian'), t('bc.channel'), t('bc.reason'), t('bc.phone')];
      const unreached = kids.filter((k) => REACHED.indexOf(k.state) < 0);
      lists.append(el('h2', null, t('bc.unreached_h', { n: unreached.length })),
        unreached.length ? table('bc-unreached', t('bc.unreached_h', { n: unreached.length }), heads2, unreached.map(person))
          : el('p', { id: 'bc-unreached-none' }, t('bc.none')));
      if (bc.ack) {
        const unconf = kids.filter((k) => !k.confirmed);
        lists.append(el('h2', null, t('bc.unconfirmed_h', { n: unconf.length })),
          unconf.length ? table('bc-unconfirmed', t('bc.unconfirmed_h', { n: unconf.length }), heads2, unconf.map(person))
            : el('p', { id: 'bc-unconfirmed-none' }, t('bc.none')));
        // Who confirmed, when, and whom it went to (issue 16: the next
        // guardian when the first does not answer).
        const conf = kids.filter((k) => k.confirmed);
        if (conf.length) {
          lists.append(el('h2', null, t('bc.confirmed_h', { n: conf.length })),
            table('bc-confirmed-list', t('bc.confirmed_h', { n: conf.length }),
              [t('bc.child'), t('bc.class'), t('bc.confirmed_by'), t('bc.confirmed_at'), t('bc.sent_to')],
              conf.map((k) => [k.child || k.id, k.class || '', k.confirmedBy || t('bc.confirmed_by_unknown'),
                KN.fmtDate(k.confirmed), k.sentTo || ''])));
        }
      }
    }

    // The phone cell: the masked numbers and 電話番号を表示, or the whole
    // numbers as tel: links once read (kept for the page's life, so that
    // a redraw while counts move does not hide them).
    const phones = new Map();
    function phoneCell(k) {
      const got = phones.get(k.id);
      if (got) {
        if (!got.length) return el('span', { class: 'muted' }, t('bc.no_phone'));
        return el('ul', { class: 'phones' }, got.map((p) => el('li', null,
          el('a', { href: 'tel:' + String(p.phone).replace(/[^0-9+]/g, '') },
            (p.guardian ? p.guardian + ' ' : '') + p.phone))));
      }
      if (!k.phone) return null;
      return el('span', null, k.phone, ' ', el('button', { type: 'button', class: 'small secondary phone-btn',
        'aria-label': t('bc.phone_of', { child: k.child || k.id }), onclick: async (ev) => {
          const btn = ev.currentTarget;
          btn.disabled = true;
          const r = await KN.api('GET', '/v1/broadcasts/' + encodeURIComponent(name) + '/recipients/' +
            encodeURIComponent(k.id) + '/phones').catch(() => ({ status: 0 }));
          if (r.status !== 200 || !r.json) { btn.disabled = false; KN.error(root, KN.failText(r)); return; }
          phones.set(k.id, (r.json.phones || []).filter((p) => p && typeof p.phone === 'string'));
          const td = btn.closest('td');
          if (td) {
            td.textContent = '';
            td.append(phoneCell(k));
            const a = td.querySelector('a');
            if (a) a.focus();
          }
        } }, t('bc.show_phone')));
    }

    // A second step for what cannot be undone: the question, then yes/no.
    function ask(question, yes, run) {
      confirmBox.textContent = '';
      const no = el('button', { type: 'button', class: 'secondary', id: 'bc-no' }, t('common.cancel'));
      const ok = el('button', { type: 'button', class: 'danger', id: 'bc-yes' }, yes);
      const p = el('p', { id: 'bc-question', tabindex: -1 }, question);
      confirmBox.append(el('div', { class: 'card confirm' }, p, el('p', { class: 'actions' }, ok, no)));
      p.focus();
      no.addEventListener('click', () => { confirmBox.textContent = ''; });
      ok.addEventListener('click', async () => {
        ok.disabled = no.disabled = true;
        await run();
        confirmBox.textContent = '';
      });
    }

    function drawActions() {
      actions.textContent = '';
      const base = '/v1/broadcasts/' + encodeURIComponent(name);
      if (!over(bc) && bc.status !== 'cancelled') {
        actions.append(el('button', { type: 'button', class: 'danger', id: 'bc-cancel', onclick: () =>
          ask(t('bc.cancel_q'), t('bc.cancel_yes'), async () => {
            const r = await KN.api('POST', base + '/cancel').catch(() => ({ status: 0 }));
            if (r.status === 200 || r.status === 202) KN.notice(t('bc.cancelled_ok'));
            else KN.error(root, KN.failText(r));
            await refresh(true);
          }) }, t('bc.cancel')));
      }
      if (over(bc) && bc.status !== 'rejected') {
        const to = bc.ack ? 'unconfirmed' : 'unreached';
        actions.append(el('button', { type: 'button', id: 'bc-resend', onclick: () => {
          // Whom the server will pick: not confirmed (not reached), and
          // with a contact still in the class list.
          const n = kids ? kids.filter((k) => (bc.ack ? !k.confirmed : REACHED.indexOf(k.state) < 0) &&
            k.state !== 'no_contact' && k.state !== 'unknown').length : '?';
          ask(t('bc.resend_q_' + to, { n: n }), t('bc.resend_yes'), async () => {
            const r = await KN.api('POST', base + '/resend', { to: to }).catch(() => ({ status: 0 }));
            if (r.status === 202 && r.json) {
              KN.notice(t('bc.resent', { n: r.json.recipients }));
              KN.go('#b/' + encodeURIComponent(r.json.id));
            } else if (r.status === 409) KN.error(root, t('bc.resend_nobody'));
            else KN.error(root, KN.failText(r));
          });
        } }, t(bc.ack ? 'bc.resend_unconfirmed' : 'bc.resend_unreached')));
      }
      actions.append(
        el('a', { class: 'button secondary', id: 'bc-csv', href: KN.url(base + '/recipients.csv'), download: '' }, t('bc.csv')),
        el('a', { class: 'button secondary', id: 'bc-csv-excel', href: KN.url(base + '/recipients.csv?charset=cp932'), download: '' }, t('bc.csv_excel')),
        el('button', { type: 'button', class: 'secondary', id: 'bc-print', onclick: () => window.print() }, t('bc.print')));
    }

    // poll: the timer's, not a person's (KN.api's background).
    async function refresh(withKids, poll) {
      if (busy) return;
      busy = true;
      try { await refresh1(withKids, poll); } finally { busy = false; }
    }

    async function refresh1(withKids, poll) {
      const r = await KN.api('GET', '/v1/broadcasts/' + encodeURIComponent(name), undefined, poll).catch(() => ({ status: 0 }));
      if (!alive) return;
      if (r.status === 404) { head.textContent = ''; KN.error(root, t('bc.not_found')); stop(); return; }
      if (r.status !== 200 || !r.json) { KN.error(root, KN.failText(r)); return; }
      const wasOver = bc && over(bc);
      bc = r.json;
      if (withKids || (over(bc) && !wasOver)) {
        const k = await children(name, poll);
        if (!alive) return;
        if (k.kids) kids = k.kids; else KN.error(root, KN.failText(k.error));
      }
      // The head and the buttons only when the state changes: an open
      // "本文" or a focused button stays as it is while counts move.
      const state = [bc.status, over(bc)].join('|');
      if (state !== drawn) {
        drawn = state;
        drawHead();
        confirmBox.textContent = '';
        drawActions();
      }
      drawStats();
      drawKids();
      if (over(bc)) stop();
    }

    function stop() { if (timer) { clearInterval(timer); timer = null; } }

    refresh(true).then(() => {
      if (!alive || !bc || over(bc)) return;
      timer = setInterval(() => { polls++; refresh(polls % RCPTS_EVERY === 0, true); }, POLL_MS);
    });
    return () => { alive = false; stop(); };
  });
})();
