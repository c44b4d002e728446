#!/usr/bin/node
/*
 * fake_apns.js - a fake Apple Push Notification service (provider API,
 * token authentication) for kairan's integration tests.  Node.js 20,
 * built-in modules only (http2, crypto, fs).
 *
 * HTTP/2 over TLS only, on 127.0.0.1 with the test CA's server
 * certificate: a client that does not offer "h2" in ALPN is refused
 * (allowHTTP1: false; recorded as {"ev":"refused_http1"}).
 *
 * POST /3/device/<token> is checked as APNs does (PUSH-CHECKLIST.md), and
 * refused with APNs' status and {"reason": ...}:
 *   405 MethodNotAllowed     not POST
 *   404 BadPath              another path
 *   400 MissingDeviceToken / BadDeviceToken   empty / not hex
 *   403 MissingProviderToken no authorization header
 *   403 InvalidProviderToken not "bearer <JWT>", alg not ES256, kid not
 *                            --key-id, iss not --team-id, a bad signature
 *                            (--public-key, the .p8's public part), iat
 *                            more than a minute in the future
 *   403 ExpiredProviderToken iat older than --token-max-age-s (3600), or
 *                            a JWT the control file expires (below)
 *   429 TooManyProviderTokenUpdates  a JWT not seen before, less than
 *                            --token-window-s (1200; fractions allowed)
 *                            after the team's current JWT was first seen,
 *                            unless that one is expired (by its age or
 *                            the control file: APNs itself then asks for
 *                            a new one).
 *                            The new one stays refused while the window
 *                            lasts; tokens seen before keep working until
 *                            their age.
 * The fake remembers each team's current JWT (the latest new one), its
 * number, iat and when it was first seen.
 *   400 MissingTopic / DeviceTokenNotForTopic  apns-topic absent / not
 *                            --topic
 *   400 InvalidPushType      apns-push-type absent or unknown, or alert
 *                            without an alert in the payload
 *   400 BadPriority          apns-priority not 10, 5 or 1 (or background
 *                            push with 10)
 *   400 BadExpirationDate    apns-expiration not a number of seconds
 *   400 BadCollapseId        apns-collapse-id longer than 64 bytes
 *   400 BadMessageId         apns-id not a canonical UUID
 *   400 PayloadEmpty         no body
 *   413 PayloadTooLarge      body over 4096 bytes
 *   400 BadPayload           body not a JSON object with an "aps"
 *                            dictionary (Apple documents no reason for
 *                            this; the fake's own)
 * Success: 200, empty body, apns-id header (the request's or a new one).
 *
 * Store (--store DIR), one JSON object per line, flushed as written:
 *   DIR/requests.jsonl  accepted notifications: {"ts","token","payload",
 *                        "headers" (apns-*),"apns_id","session","alpn",
 *                        "jwt" (the JWT's number, 1 = first seen),"bytes"}
 *   DIR/events.jsonl    {"ev":"session","session","alpn","ts"},
 *                       {"ev":"session_close","session","streams","ts"},
 *                       {"ev":"refused_http1","ts"},
 *                       {"ev":"stream_reset","session","stream","code","ts"}
 *                        (a stream ended by RST_STREAM, either side),
 *                       {"ev":"incomplete","session","bytes","content_length"}
 *                        (a request whose body was cut short: not acted on),
 *                       {"ev":"jwt","n","iat","team","ts"} for every new
 *                        JWT, {"ev":"jwt_refused","team","iat","current",
 *                        "ts"} for every 429 TooManyProviderTokenUpdates,
 *                       {"ev":"send","status","reason","token","session",
 *                        "jwt","rule"?,"ts"} for every request.
 *
 * Faults (--control FILE, JSON, re-read when it changes; "times" counters
 * restart then):
 *   {"rules": [{"match": "token substring", "action": A, "times": N,
 *               "reason": "...", "retry_after": "5" | "HTTP date",
 *               "seconds": S}]}
 *   A = "410" (Unregistered, with a timestamp), "400" (BadDeviceToken),
 *   "403" (InvalidProviderToken), "413", "429" (TooManyRequests), "500"
 *   (InternalServerError), "503" (ServiceUnavailable) -- "reason"
 *   overrides the reason, Retry-After is sent when retry_after is given;
 *   "stall" (never answer), "reset" (RST_STREAM), "drop" (GOAWAY and close
 *   the connection), "garbage" (502 with an HTML page), "delay" (answer
 *   normally after S seconds).  The first rule that matches and has times
 *   left applies; times counts per exact token.
 *   {"expire_jwts": [N, ...]}: the JWTs of those numbers (1 = the first
 *   seen) are answered 403 ExpiredProviderToken from now on, whatever
 *   their iat (APNs' clock and ours disagreeing).
 *
 * Error answers carry content-length; --no-content-length leaves it out
 * (see fake_fcm.js on what libcurl 7.88 and Node's nghttp2 make of that).
 *
 * --port 0 picks a free port, written to --port-file once listening.
 * SIGTERM/SIGINT: close, (--stats) print counters to stderr, exit 0.
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http2 = require('http2');
const path = require('path');

/* ------------------------------------------------------------ arguments */

function parseArgs(argv) {
    const o = {
        port: 0, portFile: null, cert: null, key: null, publicKey: null,
        keyId: null, teamId: null, topic: null, store: null, control: null,
        tokenWindowS: 1200, tokenMaxAgeS: 3600, maxStreams: 1000, stats: false,
        noContentLength: false,
    };
    const names = {
        '--port': 'port', '--port-file': 'portFile', '--cert': 'cert',
        '--key': 'key', '--public-key': 'publicKey', '--key-id': 'keyId',
        '--team-id': 'teamId', '--topic': 'topic', '--store': 'store',
        '--control': 'control', '--token-window-s': 'tokenWindowS',
        '--token-max-age-s': 'tokenMaxAgeS', '--max-streams': 'maxStreams',
    };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--stats') { o.stats = true; continue; }
        if (a === '--no-content-length') { o.noContentLength = true; continue; }
        if (!(a in names) || i + 1 >= argv.length) {
            process.stderr.write(`fake_apns: unknown or incomplete option ${a}\n`);
            process.exit(2);
        }
        o[names[a]] = argv[++i];
    }
    for (const k of ['port', 'tokenWindowS', 'tokenMaxAgeS', 'maxStreams'])
        o[k] = Number(o[k]);
    for (const k of ['cert', 'key', 'publicKey', 'keyId', 'teamId', 'topic']) {
        if (!o[k]) {
            process.stderr.write(`fake_apns: --${k.replace(/[A-Z]/g, c => '-' + c.toLowerCase())} is required\n`);
            process.exit(2);
        }
    }
    return o;
}

const opt = parseArgs(process.argv);
const publicKey = crypto.createPublicKey(fs.readFileSync(opt.publicKey));

/* ------------------------------------------------------------ store */

function opener(name) {
    if (!opt.store) return () => {};
    fs.mkdirSync(opt.store, { recursive: true });
    const fd = fs.openSync(path.join(opt.store, name), 'a');
    return obj => fs.writeSync(fd, JSON.stringify(obj) + '\n');
}
const writeRequest = opener('requests.jsonl');
const writeEvent = opener('events.jsonl');
const now = () => Date.now() / 1000;

/* ------------------------------------------------------------ control */

let control = {};
let controlStamp = '';
let used = new Map();

function loadControl() {
    if (!opt.control) return;
    let st;
    try { st = fs.statSync(opt.control); } catch (e) { control = {}; controlStamp = ''; return; }
    const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    if (stamp === controlStamp) return;
    controlStamp = stamp;
    used = new Map();
    try { control = JSON.parse(fs.readFileSync(opt.control, 'utf8')) || {}; }
    catch (e) { control = {}; }
}
setInterval(loadControl, 50).unref();

function pickRule(token) {
    loadControl();
    const rules = Array.isArray(control.rules) ? control.rules : [];
    for (let i = 0; i < rules.length; i++) {
        const r = rules[i];
        if (typeof r.match !== 'string' || !token.includes(r.match)) continue;
        if (r.times != null) {
            const k = i + '\0' + token;
            const n = used.get(k) || 0;
            if (n >= r.times) continue;
            used.set(k, n + 1);
        }
        return r;
    }
    return null;
}

/* ------------------------------------------------------------ provider tokens */

const jwts = new Map();  /* JWT -> its number */
const teams = new Map(); /* iss -> {jwt, n, iat, since}: the current one */

function b64urlJson(s) {
    try { return JSON.parse(Buffer.from(s, 'base64url').toString('utf8')); }
    catch (e) { return null; }
}

function expiredByControl(n) {
    loadControl();
    return Array.isArray(control.expire_jwts) && control.expire_jwts.includes(n);
}

/* Returns [status, reason] for a refused token, or [0, number]. */
function checkJwt(auth) {
    if (!auth) return [403, 'MissingProviderToken'];
    const mt = /^bearer (\S+)$/i.exec(auth);
    if (!mt) return [403, 'InvalidProviderToken'];
    const jwt = mt[1];
    if (jwts.has(jwt)) {
        /* Known: only its age (or the control file) can have changed. */
        const c = b64urlJson(jwt.split('.')[1]);
        const n = jwts.get(jwt);
        if (now() - c.iat > opt.tokenMaxAgeS || expiredByControl(n))
            return [403, 'ExpiredProviderToken'];
        return [0, n];
    }
    const parts = jwt.split('.');
    if (parts.length !== 3) return [403, 'InvalidProviderToken'];
    const h = b64urlJson(parts[0]), c = b64urlJson(parts[1]);
    if (!h || !c || h.alg !== 'ES256') return [403, 'InvalidProviderToken'];
    if (h.kid !== opt.keyId) return [403, 'InvalidProviderToken'];
    if (c.iss !== opt.teamId) return [403, 'InvalidProviderToken'];
    const sig = Buffer.from(parts[2], 'base64url');
    if (sig.length !== 64 || !crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]),
        { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig))
        return [403, 'InvalidProviderToken'];
    if (!Number.isInteger(c.iat) || c.iat > now() + 60) return [403, 'InvalidProviderToken'];
    const cur = teams.get(c.iss);
    /* The window runs from when the team's current token was first seen;
     * a current token APNs calls expired (by its age or the control file)
     * may be replaced at once: APNs itself asks for a new one. */
    if (cur && now() - cur.since < opt.tokenWindowS &&
        now() - cur.iat <= opt.tokenMaxAgeS && !expiredByControl(cur.n)) {
        writeEvent({ ev: 'jwt_refused', team: c.iss, iat: c.iat, current: cur.n, ts: now() });
        return [429, 'TooManyProviderTokenUpdates'];
    }
    /* A well-signed token is recorded the first time it is seen, even
     * when it arrives already past its age (a loaded client can take
     * longer than --token-max-age-s 1 between signing and sending): the
     * tests count the tokens a client made, not the ones that were young. */
    jwts.set(jwt, jwts.size + 1);
    teams.set(c.iss, { jwt, n: jwts.size, iat: c.iat, since: now() });
    writeEvent({ ev: 'jwt', n: jwts.size, iat: c.iat, team: c.iss, ts: now() });
    if (now() - c.iat > opt.tokenMaxAgeS) return [403, 'ExpiredProviderToken'];
    return [0, jwts.size];
}

/* ------------------------------------------------------------ requests */

const PUSH_TYPES = new Set(['alert', 'background', 'location', 'voip', 'complication',
    'fileprovider', 'mdm', 'liveactivity', 'pushtotalk', 'widgets']);
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const stats = { sessions: 0, refused_http1: 0, streams: 0, accepted: 0, refused: 0, jwts: 0 };

function answer(stream, status, reason, headers) {
    if (stream.destroyed || stream.closed) return;
    const h = Object.assign({ ':status': status }, headers || {});
    if (reason == null) {
        stream.respond(h, { endStream: true });
        return;
    }
    const o = { reason };
    if (status === 410) o.timestamp = Date.now();
    const body = JSON.stringify(o);
    h['content-type'] = 'application/json';
    if (!opt.noContentLength) h['content-length'] = Buffer.byteLength(body);
    stream.respond(h);
    stream.end(body);
}

/*
 * Check one request in APNs' order; returns [status, reason] for a refusal
 * or [0, null, parsed payload].
 */
function check(headers, body, ev) {
    if (headers[':method'] !== 'POST') return [405, 'MethodNotAllowed'];
    const mt = /^\/3\/device\/([^/?]*)$/.exec(headers[':path'] || '');
    if (!mt) return [404, 'BadPath'];
    const token = mt[1];
    ev.token = token;
    if (token === '') return [400, 'MissingDeviceToken'];
    if (!/^[0-9a-fA-F]+$/.test(token)) return [400, 'BadDeviceToken'];
    const [js, jr] = checkJwt(headers['authorization']);
    if (js) return [js, jr];
    ev.jwt = jr;
    const topic = headers['apns-topic'];
    if (!topic) return [400, 'MissingTopic'];
    if (topic !== opt.topic) return [400, 'DeviceTokenNotForTopic'];
    const type = headers['apns-push-type'];
    if (!type || !PUSH_TYPES.has(type)) return [400, 'InvalidPushType'];
    const prio = headers['apns-priority'];
    if (prio !== undefined && !['10', '5', '1'].includes(prio)) return [400, 'BadPriority'];
    if (type === 'background' && prio === '10') return [400, 'BadPriority'];
    const exp = headers['apns-expiration'];
    if (exp !== undefined && !/^\d+$/.test(exp)) return [400, 'BadExpirationDate'];
    const cid = headers['apns-collapse-id'];
    if (cid !== undefined && Buffer.byteLength(cid) > 64) return [400, 'BadCollapseId'];
    const id = headers['apns-id'];
    if (id !== undefined && !UUID.test(id)) return [400, 'BadMessageId'];
    if (body.length === 0) return [400, 'PayloadEmpty'];
    if (body.length > 4096) return [413, 'PayloadTooLarge'];
    let p;
    try { p = JSON.parse(body.toString('utf8')); } catch (e) { return [400, 'BadPayload']; }
    if (p === null || typeof p !== 'object' || Array.isArray(p) ||
        p.aps === null || typeof p.aps !== 'object' || Array.isArray(p.aps))
        return [400, 'BadPayload'];
    if (type === 'alert' && p.aps.alert === undefined && p.aps.sound === undefined &&
        p.aps.badge === undefined)
        return [400, 'InvalidPushType'];
    return [0, null, p];
}

function onStream(stream, headers) {
    const chunks = [];
    let size = 0;
    const session = stream.session;
    stats.streams++;
    if (session.__streams !== undefined) session.__streams++;
    stream.on('data', c => {
        size += c.length;
        if (size <= 1 << 20) chunks.push(c);
    });
    stream.on('error', () => {});
    stream.on('close', () => {
        if (stream.rstCode) writeEvent({ ev: 'stream_reset', session: session.__kid,
            stream: stream.id, code: stream.rstCode, ts: now() });
    });
    stream.on('end', () => {
        const body = Buffer.concat(chunks);
        const cl = headers['content-length'];
        if (cl !== undefined && Number(cl) !== size) {
            /* The stream ended early (reset, connection gone): APNs never
             * acts on half a request. */
            writeEvent({ ev: 'incomplete', session: session.__kid, bytes: size,
                content_length: Number(cl), ts: now() });
            return;
        }
        const ev = { ev: 'send', ts: now(), session: session.__kid, token: null, jwt: null };
        const [status, reason, payload] = check(headers, body, ev);
        if (status) {
            stats.refused++;
            ev.status = status;
            ev.reason = reason;
            writeEvent(ev);
            return answer(stream, status, reason);
        }
        const rule = pickRule(ev.token);
        if (rule) {
            const ra = rule.retry_after != null ? { 'retry-after': String(rule.retry_after) } : {};
            const refuse = (st, rs) => {
                stats.refused++;
                ev.status = st;
                ev.reason = rs;
                ev.rule = rule.action;
                writeEvent(ev);
                answer(stream, st, rs, ra);
            };
            switch (String(rule.action)) {
            case '410': return refuse(410, rule.reason || 'Unregistered');
            case '400': return refuse(400, rule.reason || 'BadDeviceToken');
            case '403': return refuse(403, rule.reason || 'InvalidProviderToken');
            case '413': return refuse(413, rule.reason || 'PayloadTooLarge');
            case '429': return refuse(429, rule.reason || 'TooManyRequests');
            case '500': return refuse(500, rule.reason || 'InternalServerError');
            case '503': return refuse(503, rule.reason || 'ServiceUnavailable');
            case 'garbage':
                ev.status = 502; ev.reason = 'GARBAGE'; ev.rule = rule.action; writeEvent(ev);
                stream.respond({ ':status': 502, 'content-type': 'text/html',
                    'content-length': 41 });
                return stream.end('<html><body>502 Bad Gateway</body></html>');
            case 'stall':
                ev.status = 0; ev.reason = 'STALL'; ev.rule = rule.action; writeEvent(ev);
                return;
            case 'reset':
                ev.status = 0; ev.reason = 'RESET'; ev.rule = rule.action; writeEvent(ev);
                return stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
            case 'drop':
                ev.status = 0; ev.reason = 'DROP'; ev.rule = rule.action; writeEvent(ev);
                return session.destroy();
            case 'delay':
                ev.rule = rule.action;
                setTimeout(() => accept(stream, headers, body, payload, ev),
                    (rule.seconds || 1) * 1000);
                return;
            default:
                break;
            }
        }
        accept(stream, headers, body, payload, ev);
    });
}

function accept(stream, headers, body, payload, ev) {
    const id = headers['apns-id'] || crypto.randomUUID();
    const h = {};
    for (const [k, v] of Object.entries(headers)) {
        if (k.startsWith('apns-')) h[k] = v;
    }
    stats.accepted++;
    ev.status = 200;
    ev.apns_id = id;
    writeEvent(ev);
    writeRequest({ ts: now(), token: ev.token, payload, headers: h, apns_id: id,
        session: ev.session, alpn: stream.session.alpnProtocol, jwt: ev.jwt,
        bytes: body.length });
    answer(stream, 200, null, { 'apns-id': id });
}

/* ------------------------------------------------------------ server */

let sessionSeq = 0;
const server = http2.createSecureServer({
    cert: fs.readFileSync(opt.cert),
    key: fs.readFileSync(opt.key),
    allowHTTP1: false,
    minVersion: 'TLSv1.2',
    settings: { maxConcurrentStreams: opt.maxStreams },
    /* Node counts a stream as open until its JS object is gone, a moment
     * after the client saw it end, so a client that keeps exactly
     * maxStreams in flight can be refused a stream (REFUSED_STREAM, safe
     * to retry).  Node's default then tears the whole connection down
     * after 100 refusals (GOAWAY INTERNAL_ERROR), which no real provider
     * does: never do that here. */
    maxSessionRejectedStreams: 1e9,
    maxSessionInvalidFrames: 1e9,
});

server.on('session', s => {
    s.__kid = ++sessionSeq;
    s.__streams = 0;
    stats.sessions++;
    writeEvent({ ev: 'session', session: s.__kid, alpn: s.alpnProtocol || null, ts: now() });
    s.on('close', () => writeEvent({ ev: 'session_close', session: s.__kid,
        streams: s.__streams, ts: now() }));
    s.on('error', () => {});
});
server.on('stream', onStream);
/* A client that did not negotiate h2 (HTTP/1.1 only): APNs refuses it. */
server.on('unknownProtocol', sock => {
    stats.refused_http1++;
    writeEvent({ ev: 'refused_http1', alpn: sock.alpnProtocol || null, ts: now() });
    sock.destroy();
});
/* A client that offers ALPN without h2 fails the handshake here. */
server.on('tlsClientError', err => {
    if (/no application protocol|NO_APPLICATION_PROTOCOL/i.test(String(err && (err.code + err.message)))) {
        stats.refused_http1++;
        writeEvent({ ev: 'refused_http1', alpn: null, ts: now() });
    }
});
server.on('sessionError', () => {});

server.listen(opt.port, '127.0.0.1', () => {
    const port = server.address().port;
    if (opt.portFile) {
        const tmp = opt.portFile + '.tmp';
        fs.writeFileSync(tmp, String(port));
        fs.renameSync(tmp, opt.portFile);
    }
    process.stderr.write(`fake_apns: listening on 127.0.0.1:${port}\n`);
});

function stop() {
    stats.jwts = jwts.size;
    if (opt.stats) process.stderr.write('fake_apns: stats ' + JSON.stringify(stats) + '\n');
    server.close();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
