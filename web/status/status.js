/* kairan status page: polls the API every 2 s with the operator token
 * kept in this tab's sessionStorage.  Every value shown goes through
 * textContent or the canvas; nothing is ever parsed as HTML. */
'use strict';
(function () {
  var KEY = 'kairan.token';
  var COLORS = { email: '#2a6fdb', line: '#06a04a', push: '#c46b00' };
  var timer = null;
  var busy = false;

  function $(id) { return document.getElementById(id); }

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
    if (s < 60) { return s + ' s'; }
    if (s < 3600) { return Math.floor(s / 60) + ' min ' + (s % 60) + ' s'; }
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function renderQueues(q) {
    var body = $('queues').tBodies[0];
    clear(body);
    (q.queues || []).forEach(function (row) {
      var tr = el('tr');
      tr.appendChild(el('td', null, row.channel));
      tr.appendChild(el('td', null, row.priority));
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
    $('redis').textContent = h.redis ? 'up' : 'DOWN';
    $('redis').className = h.redis ? 'big state-closed' : 'big state-open';
    var ul = $('breakers');
    clear(ul);
    var b = h.breakers || {};
    Object.keys(b).sort().forEach(function (route) {
      var li = el('li');
      li.appendChild(el('span', null, route + ': '));
      li.appendChild(el('span', 'state-' + String(b[route]).replace(/[^a-z-]/g, ''), b[route]));
      ul.appendChild(li);
    });
  }

  function renderBroadcasts(list) {
    var box = $('broadcasts');
    clear(box);
    var items = list.broadcasts || [];
    $('nobc').hidden = items.length > 0;
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
        b.priority === 'urgent' ? 'urgent' : null].filter(function (x) { return x; }).join(' / ')));
      head.appendChild(left);
      head.appendChild(el('span', 'status', b.status));
      div.appendChild(head);
      var bar = el('div', 'bar');
      bar.setAttribute('role', 'progressbar');
      bar.setAttribute('aria-valuemin', '0');
      bar.setAttribute('aria-valuemax', '100');
      bar.setAttribute('aria-valuenow', String(b.percent));
      bar.setAttribute('aria-label', 'progress of ' + b.id);
      var segs = [['delivered', b.delivered], ['failed', failed], ['bounced', bounced],
        ['pending', b.pending]];
      segs.forEach(function (s) {
        var span = el('span', 'seg-' + s[0]);
        span.style.width = (jobs > 0 ? (100 * s[1] / jobs) : 0) + '%';
        span.title = s[0] + ': ' + s[1];
        bar.appendChild(span);
      });
      div.appendChild(bar);
      var line = el('div', 'muted');
      line.appendChild(el('span', 'pct', b.percent + ' %'));
      line.appendChild(document.createTextNode('  delivered ' + b.delivered + ', failed ' + b.failed +
        ', expired ' + b.expired + ', cancelled ' + b.cancelled +
        (bounced || suppressed ? ', bounced ' + bounced + ', suppressed ' + suppressed : '') +
        ', pending ' + b.pending +
        ' of ' + jobs + (b.created ? '  (created ' + b.created + ')' : '')));
      div.appendChild(line);
      box.appendChild(div);
    });
  }

  var lastHistory = null;

  function renderChart(h) {
    var canvas = $('chart');
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
    g.fillText('-' + Math.round(span / 60000) + ' min', left, ht - 6);
    g.fillText('now', left + pw - 22, ht - 6);
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
      s.appendChild(document.createTextNode(c + ' ' + last));
      legend.appendChild(s);
    });
  }

  function refresh() {
    if (busy || !token()) { return; }
    busy = true;
    Promise.all([get('/v1/queues', true), get('/v1/broadcasts?active=1', true),
                 get('/v1/queues/history', true), get('/healthz', false)])
      .then(function (r) {
        renderQueues(r[0]);
        renderBroadcasts(r[1]);
        lastHistory = r[2];
        renderChart(r[2]);
        renderHealth(r[3]);
        $('main').hidden = false;
        $('forget').hidden = false;
        $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
        say('', false);
      })
      .catch(function (e) {
        if (e.status === 401 || e.status === 403) {
          stop();
          $('main').hidden = true;
          say('Token refused: ' + e.message, true);
        } else {
          say('Cannot refresh: ' + e.message, true);
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
    $('login').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var t = $('token').value.trim();
      $('token').value = '';
      if (!t) { say('Enter a token.', true); return; }
      sessionStorage.setItem(KEY, t);
      start();
    });
    $('forget').addEventListener('click', function () {
      sessionStorage.removeItem(KEY);
      stop();
      $('main').hidden = true;
      $('forget').hidden = true;
      say('Token forgotten.', false);
    });
    // A phone turned, a window resized: draw the chart again at its new
    // size, so that its labels never end up squeezed or stretched.
    window.addEventListener('resize', function () {
      if (lastHistory !== null && !$('main').hidden) { renderChart(lastHistory); }
    });
    if (token()) { start(); }
  });
}());
