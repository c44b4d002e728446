/* kairan status page: polls the API every 2 s with the operator token
 * kept in this tab's sessionStorage.  Every value shown goes through
 * textContent or the canvas; nothing is ever parsed as HTML.  Japanese
 * first, English on request (the choice kept as the console keeps it,
 * localStorage kairan.lang); the page's own words are in STR below, the
 * HTML holds the Japanese ones for the first paint. */
'use strict';
(function () {
  var KEY = 'kairan.token';
  var LANG_KEY = 'kairan.lang';
  var COLORS = { email: '#2a6fdb', line: '#06a04a', push: '#c46b00' };
  var timer = null;
  var busy = false;
  var lang = 'ja';

  var STR = {
    ja: {
      title: 'kairan 稼働状況', h1: '稼働状況', lang: '表示言語',
      token: '運用者トークン', show: '表示', forget: 'トークンを消去',
      'h.queues': 'チャネル別のキューの深さ（ストリーム内のジョブ、直近の数分）',
      'th.channel': 'チャネル', 'th.priority': '優先度', 'th.depth': '深さ',
      'th.pending': '処理中', 'th.oldest': '最古のジョブ',
      'h.retry': '再試行待ち', 'h.dlq': '失敗（DLQ）', 'h.breakers': '遮断器',
      'h.broadcasts': '配信（進行中と直近に終わったもの）',
      nobc: '進行中の配信はありません。', 'h.rejected': '受付不可の配信',
      'h.schools': '学校ごとの配信（進行中・予約）', 'th.school': '学校', 'th.active': '件数',
      'th.progress': '進み具合', done_of: '{pct} %（{f} / {n} 件）',
      enter: 'トークンを入力してください。',
      refused: 'トークンが受け付けられませんでした: {m}',
      cannot: '更新できません: {m}', forgotten: 'トークンを消去しました。',
      updated: '{t} 更新',
      s: '{s} 秒', ms: '{m} 分 {s} 秒', hm: '{h} 時間 {m} 分',
      up: '稼働中', down: '停止',
      'br.closed': '正常', 'br.half-open': '試行中', 'br.open': '遮断中',
      'ch.email': 'メール', 'ch.line': 'LINE', 'ch.push': 'アプリ通知',
      'pr.urgent': '緊急', 'pr.normal': '通常',
      'st.queued': '予約', 'st.sending': '配信中', 'st.done': '完了',
      'st.cancelled': '取り消し', 'st.rejected': '受付不可',
      'seg.delivered': '配信済み', 'seg.failed': '失敗', 'seg.bounced': '不達',
      'seg.pending': '未完了',
      line: '配信済み {d}、失敗 {f}、期限切れ {x}、取り消し {c}{b}、未完了 {p}（全 {n} 件）',
      bounced: '、不達 {b}、送信停止 {s}', created: '　作成 {t}',
      progress: '{id} の進み具合',
      count: '進行中 {total} 件のうち {shown} 件を表示',
      now: '現在', ago: '{m} 分前'
    },
    en: {
      title: 'kairan status', h1: 'status', lang: 'Language',
      token: 'Operator token', show: 'Show', forget: 'Forget token',
      'h.queues': 'Queue depth per channel (jobs in the streams, last minutes)',
      'th.channel': 'channel', 'th.priority': 'priority', 'th.depth': 'depth',
      'th.pending': 'pending', 'th.oldest': 'oldest job',
      'h.retry': 'Retry', 'h.dlq': 'Dead letters', 'h.breakers': 'Breakers',
      'h.broadcasts': 'Broadcasts (active and ended in the last minutes)',
      nobc: 'No active broadcast.', 'h.rejected': 'Rejected broadcasts',
      'h.schools': 'Per school (active or scheduled)', 'th.school': 'school',
      'th.active': 'broadcasts', 'th.progress': 'progress', done_of: '{pct} % ({f} of {n})',
      enter: 'Enter a token.', refused: 'Token refused: {m}',
      cannot: 'Cannot refresh: {m}', forgotten: 'Token forgotten.',
      updated: 'updated {t}',
      s: '{s} s', ms: '{m} min {s} s', hm: '{h} h {m} min',
      up: 'up', down: 'DOWN',
      'br.closed': 'closed', 'br.half-open': 'half-open', 'br.open': 'open',
      'ch.email': 'e-mail', 'ch.line': 'LINE', 'ch.push': 'push',
      'pr.urgent': 'urgent', 'pr.normal': 'normal',
      'st.queued': 'scheduled', 'st.sending': 'sending', 'st.done': 'done',
      'st.cancelled': 'cancelled', 'st.rejected': 'rejected',
      'seg.delivered': 'delivered', 'seg.failed': 'failed',
      'seg.bounced': 'bounced', 'seg.pending': 'pending',
      line: 'delivered {d}, failed {f}, expired {x}, cancelled {c}{b}, pending {p} of {n}',
      bounced: ', bounced {b}, suppressed {s}', created: '  (created {t})',
      progress: 'progress of {id}',
      count: 'Showing {shown} of {total} active',
      now: 'now', ago: '-{m} min'
    }
  };

  /* The page's word for key in the chosen language, {name}s filled in
   * from args; a key it does not know (a status or channel of a newer
   * kairan) falls back to def, else to the key itself. */
  function t(key, args, def) {
    var s = STR[lang][key];
    if (s === undefined) { return def !== undefined ? String(def) : key; }
    return s.replace(/\{(\w+)\}/g, function (all, k) {
      return args && args[k] !== undefined ? String(args[k]) : all;
    });
  }

  function $(id) { return document.getElementById(id); }

  /* Show every fixed word of the page in lang. */
  function applyLang() {
    document.documentElement.lang = lang;
    Array.prototype.forEach.call(document.querySelectorAll('[data-t]'), function (e) {
      e.textContent = t(e.getAttribute('data-t'));
    });
    $('lang').value = lang;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function token() { return sessionStorage.getItem(KEY) || ''; }

  function say(text, isError) {
    var m = $('msg');
    m.textContent = text;
    m.className = isError ? 'msg err' : 'msg';
  }

  function get(path, auth) {
    var headers = { 'Accept': 'application/json' };
    if (auth) { headers.Authorization = 'Bearer ' + token(); }
    return fetch(path, { headers: headers, cache: 'no-store', credentials: 'omit' })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!r.ok && !(path === '/healthz' && r.status === 503)) {
            var e = new Error((j && j.error) ? j.error : 'HTTP ' + r.status);
            e.status = r.status;
            throw e;
          }
          return j;
        });
      });
  }

  function age(ms) {
    var s = Math.round(ms / 1000);
    if (s < 60) { return t('s', { s: s }); }
    if (s < 3600) { return t('ms', { m: Math.floor(s / 60), s: s % 60 }); }
    return t('hm', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  }

  function chan(c) { return t('ch.' + c, null, c); }

  function renderQueues(q) {
    var body = $('queues').tBodies[0];
    clear(body);
    (q.queues || []).forEach(function (row) {
      var tr = el('tr');
      tr.appendChild(el('td', null, chan(row.channel)));
      tr.appendChild(el('td', null, t('pr.' + row.priority, null, row.priority)));
      tr.appendChild(el('td', null, row.depth));
      tr.appendChild(el('td', null, row.pending));
      tr.appendChild(el('td', null, row.oldest_age_ms > 0 ? age(row.oldest_age_ms) : '-'));
      body.appendChild(tr);
    });
    $('retry').textContent = String(q.retry);
    $('dlq').textContent = String(q.dlq);
    var rej = $('rejected');
    clear(rej);
    (q.rejected || []).forEach(function (r) {
      var li = el('li');
      li.appendChild(el('span', 'bc-id', r.id));
      li.appendChild(document.createTextNode(': ' + r.reason));
      rej.appendChild(li);
    });
    $('rejected-box').hidden = !(q.rejected && q.rejected.length);
  }

  function renderHealth(h) {
    $('redis').textContent = h.redis ? t('up') : t('down');
    $('redis').className = h.redis ? 'big state-closed' : 'big state-open';
    var ul = $('breakers');
    clear(ul);
    var b = h.breakers || {};
    Object.keys(b).sort().forEach(function (route) {
      var li = el('li');
      li.appendChild(el('span', null, route + ': '));
      var st = String(b[route]);
      var state = el('span', 'state-' + st.replace(/[^a-z-]/g, ''), t('br.' + st, null, st));
      state.setAttribute('data-state', st);
      li.appendChild(state);
      ul.appendChild(li);
    });
  }

  function renderBroadcasts(list) {
    var box = $('broadcasts');
    clear(box);
    var items = list.broadcasts || [];
    $('nobc').hidden = items.length > 0;
    // An operator sees every school's: the list holds the first 100 of
    // the active ones, and says so when there are more.
    var total = list.active_total || 0;
    var active = items.filter(function (b) {
      return ['done', 'cancelled', 'rejected'].indexOf(b.status) < 0;
    }).length;
    $('bc-count').hidden = !(total > active);
    $('bc-count').textContent = total > active ? t('count', { shown: active, total: total }) : '';
    items.forEach(function (b) {
      var jobs = b.jobs > 0 ? b.jobs : 0;
      // bounced (issue 18): accepted by the relay, then came back
      var bounced = b.bounced || 0, suppressed = b.suppressed || 0;
      var failed = b.failed + b.expired + b.cancelled;
      var div = el('div', 'bc');
      div.setAttribute('data-id', b.id);
      div.setAttribute('data-percent', String(b.percent));
      var head = el('div', 'bc-head');
      var left = el('span');
      left.appendChild(el('span', 'bc-id', b.id));
      left.appendChild(document.createTextNode(' ' + [b.tenant, b.category,
        b.priority === 'urgent' ? t('pr.urgent') : null].filter(function (x) { return x; }).join(' / ')));
      head.appendChild(left);
      var status = el('span', 'status', t('st.' + b.status, null, b.status));
      status.setAttribute('data-status', String(b.status));
      head.appendChild(status);
      div.appendChild(head);
      var bar = el('div', 'bar');
      bar.setAttribute('role', 'progressbar');
      bar.setAttribute('aria-valuemin', '0');
      bar.setAttribute('aria-valuemax', '100');
      bar.setAttribute('aria-valuenow', String(b.percent));
      bar.setAttribute('aria-label', t('progress', { id: b.id }));
      var segs = [['delivered', b.delivered], ['failed', failed], ['bounced', bounced],
        ['pending', b.pending]];
      segs.forEach(function (s) {
        var span = el('span', 'seg-' + s[0]);
        span.style.width = (jobs > 0 ? (100 * s[1] / jobs) : 0) + '%';
        span.title = t('seg.' + s[0]) + ': ' + s[1];
        bar.appendChild(span);
      });
      div.appendChild(bar);
      var line = el('div', 'muted');
      line.appendChild(el('span', 'pct', b.percent + ' %'));
      line.appendChild(document.createTextNode('  ' + t('line', { d: b.delivered, f: b.failed,
        x: b.expired, c: b.cancelled, p: b.pending, n: jobs,
        b: bounced || suppressed ? t('bounced', { b: bounced, s: suppressed }) : '' }) +
        (b.created ? t('created', { t: b.created }) : '')));
      div.appendChild(line);
      box.appendChild(div);
    });
  }

  /* Per school (?active=1&summary=tenant): shown when more than one
   * school has something running, the busiest first. */
  function renderSchools(sum) {
    var body = $('schools').tBodies[0];
    clear(body);
    var rows = (sum && sum.tenants) || [];
    rows.forEach(function (r) {
      var tr = el('tr');
      tr.setAttribute('data-tenant', r.tenant);
      tr.appendChild(el('td', null, r.tenant));
      tr.appendChild(el('td', null, r.active));
      tr.appendChild(el('td', null, t('done_of', { pct: r.percent, f: r.final, n: r.jobs })));
      body.appendChild(tr);
    });
    $('schools-box').hidden = rows.length < 2;
  }

  var lastHistory = null;

  function renderChart(h) {
    var canvas = $('chart');
    canvas.hidden = $('legend').hidden = h === null;
    if (h === null) { return; }
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 900;
    var ht = canvas.clientHeight || 220;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(ht * ratio);
    var g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, ht);
    var samples = h.samples || [];
    var chans = h.channels || ['email', 'line', 'push'];
    var max = 4;
    samples.forEach(function (s) {
      chans.forEach(function (c) { if (s[c] > max) { max = s[c]; } });
    });
    max = Math.ceil(max / 4) * 4;
    var left = 48, right = 8, top = 8, bottom = 22;
    var pw = w - left - right, ph = ht - top - bottom;
    g.strokeStyle = '#dde1e8';
    g.fillStyle = '#6b7385';
    g.font = '11px sans-serif';
    g.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var y = top + ph - ph * i / 4;
      g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
      g.fillText(String(Math.round(max * i / 4)), 4, y + 4);
    }
    var span = (h.interval_ms || 5000) * Math.max(1, (h.capacity || 120) - 1);
    var now = samples.length ? samples[samples.length - 1].t : Date.now();
    g.fillText(t('ago', { m: Math.round(span / 60000) }), left, ht - 6);
    g.textAlign = 'right';
    g.fillText(t('now'), left + pw, ht - 6);
    g.textAlign = 'left';
    chans.forEach(function (c) {
      g.strokeStyle = COLORS[c] || '#333';
      g.lineWidth = 2;
      g.beginPath();
      samples.forEach(function (s, k) {
        var x = left + pw - pw * (now - s.t) / span;
        var yy = top + ph - ph * (s[c] || 0) / max;
        if (k === 0) { g.moveTo(x, yy); } else { g.lineTo(x, yy); }
      });
      g.stroke();
    });
    var legend = $('legend');
    clear(legend);
    chans.forEach(function (c) {
      var s = el('span');
      var sw = el('i');
      sw.style.background = COLORS[c] || '#333';
      s.appendChild(sw);
      var last = samples.length ? samples[samples.length - 1][c] : 0;
      s.appendChild(document.createTextNode(chan(c) + ' ' + last));
      legend.appendChild(s);
    });
  }

  function refresh() {
    if (busy || !token()) { return; }
    busy = true;
    Promise.all([get('/v1/queues', true), get('/v1/broadcasts?active=1', true),
                 // every school's depths over time: not for a school's token
                 get('/v1/queues/history', true).catch(function () { return null; }),
                 get('/healthz', false),
                 // a school's own token has no summary: the page works without
                 get('/v1/broadcasts?active=1&summary=tenant', true)
                   .catch(function () { return null; })])
      .then(function (r) {
        renderQueues(r[0]);
        renderBroadcasts(r[1]);
        lastHistory = r[2];
        renderChart(r[2]);
        renderHealth(r[3]);
        renderSchools(r[4]);
        $('main').hidden = false;
        $('forget').hidden = false;
        $('updated').textContent = t('updated', { t: new Date().toLocaleTimeString(lang === 'ja' ? 'ja-JP' : 'en-GB') });
        say('', false);
      })
      .catch(function (e) {
        if (e.status === 401 || e.status === 403) {
          stop();
          $('main').hidden = true;
          say(t('refused', { m: e.message }), true);
        } else {
          say(t('cannot', { m: e.message }), true);
        }
      })
      .then(function () { busy = false; });
  }

  function start() {
    stop();
    refresh();
    timer = setInterval(refresh, 2000);
  }

  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
  }

  document.addEventListener('DOMContentLoaded', function () {
    try { lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'ja'; } catch (e) { /* private mode */ }
    applyLang();
    $('lang').addEventListener('change', function () {
      lang = $('lang').value === 'en' ? 'en' : 'ja';
      try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode */ }
      applyLang();
      // The words drawn from data: again at once, not at the next poll.
      if (token() && !$('main').hidden) { refresh(); }
    });
    $('login').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var tok = $('token').value.trim();
      $('token').value = '';
      if (!tok) { say(t('enter'), true); return; }
      sessionStorage.setItem(KEY, tok);
      start();
    });
    $('forget').addEventListener('click', function () {
      sessionStorage.removeItem(KEY);
      stop();
      $('main').hidden = true;
      $('forget').hidden = true;
      say(t('forgotten'), false);
    });
    // A phone turned, a window resized: draw the chart again at its new
    // size, so that its labels never end up squeezed or stretched.
    window.addEventListener('resize', function () {
      if (lastHistory !== null && !$('main').hidden) { renderChart(lastHistory); }
    });
    if (token()) { start(); }
  });
}());
