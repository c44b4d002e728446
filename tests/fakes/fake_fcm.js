#!/usr/bin/node
/*
 * fake_fcm.js - a fake Firebase Cloud Messaging HTTP v1 server, with its
 * OAuth 2.0 token endpoint, for kairan's integration tests and benchmark.
 * Node.js 20, built-in modules only (http2, tls, crypto, fs).
 *
 * HTTPS on 127.0.0.1 with the test CA's server certificate; HTTP/2 (ALPN
 * h2) and HTTP/1.1, as Google's front end (the protocol of every request
 * is recorded, so a test can tell that HTTP/2 was used).
 *
 * POST /token (form): the service-account flow.  grant_type must be
 *   urn:ietf:params:oauth:grant-type:jwt-bearer; the assertion is a JWT
 *   whose header is {"alg":"RS256","typ":"JWT","kid":--kid}, signed with
 *   the key whose public part is --public-key, with claims iss =
 *   --client-email, scope containing .../auth/firebase.messaging (or
 *   cloud-platform), aud = this endpoint's URL (--aud), iat within 5
 *   minutes of now, iat < exp <= iat + 3600, exp in the future.  Answer:
 *   {"access_token","expires_in": --token-ttl,"token_type":"Bearer"}; the
 *   token is refused --token-lifetime seconds after issue (default: the
 *   TTL; shorter simulates a token revoked early).  Refusals: 400
 *   {"error":"invalid_grant","error_description":...}.
 *
 * POST /v1/projects/<project>/messages:send: Authorization: Bearer <a
 *   token issued here and not expired> (else 401 UNAUTHENTICATED); the
 *   project must be --project (else 403 PERMISSION_DENIED); Content-Type
 *   application/json; the body is a SendMessageRequest (specs/fcm/
 *   openapi.yaml) and what the schema cannot say (PUSH-CHECKLIST.md):
 *   unknown fields refused, exactly one of token/topic/condition, data
 *   values strings and no reserved keys, android.priority NORMAL|HIGH,
 *   android.ttl "<seconds>s" up to 4 weeks, apns.headers values strings
 *   with valid apns-priority / apns-push-type / apns-collapse-id, the whole
 *   request at most 4096 bytes.  Errors come in FCM's shape:
 *   {"error":{"code","message","status","details":[{"@type":
 *   "type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode"}]}}.
 *   Success: 200 {"name":"projects/<project>/messages/<n>"}.
 *
 * Store (--store DIR), one JSON object per line, flushed as written:
 *   DIR/requests.jsonl  accepted sends: {"ts","token","message","proto",
 *                        "session","auth" (token id),"bytes","name"}
 *   DIR/events.jsonl    {"ev":"session","session","alpn","ts"},
 *                       {"ev":"session_close","session","ts"},
 *                       {"ev":"stream_reset","session","stream","code","ts"}
 *                        (a stream ended by RST_STREAM, either side),
 *                       {"ev":"incomplete","session","bytes","content_length"}
 *                        (a request whose body was cut short: not acted on),
 *                       {"ev":"goaway_received"|"frame_error"|
 *                        "session_error", "session", ...},
 *                       {"ev":"token","id","ts","expires_in","lifetime"},
 *                       {"ev":"token_refused","reason","ts"},
 *                       {"ev":"send","status","code","token","session",
 *                        "proto","auth","rule"?,"ts"} for every send
 *                       (accepted or not; "auth" is the token id or null,
 *                        code "EXPIRED" marks an expired access token).
 *
 * Faults (--control FILE, JSON, re-read when it changes; "times" counters
 * restart then):
 *   {"rules": [{"match": "token substring", "action": A, "times": N,
 *               "retry_after": "5" | "HTTP date", "seconds": S,
 *               "message": "..."}],
 *    "token": {"action": "invalid_grant" | "500" | "stall", "times": N}}
 *   A = "400" INVALID_ARGUMENT (invalid registration token), "401"
 *   THIRD_PARTY_AUTH_ERROR, "403" SENDER_ID_MISMATCH, "404" UNREGISTERED,
 *   "429" QUOTA_EXCEEDED, "500" INTERNAL, "503" UNAVAILABLE (Retry-After
 *   when retry_after is given), "stall" (never answer), "reset"
 *   (RST_STREAM), "drop" (close the whole connection), "garbage" (502
 *   with an HTML page), "delay" (answer normally after S seconds).  The
 *   first rule that matches and has times left applies; times counts per
 *   exact token.
 *
 * Answers carry content-length, as Google's do; --no-content-length
 * leaves it out (libcurl 7.88 then resets every stream after its answer,
 * and Node's nghttp2 >= 1.57 answers 1000 such resets with GOAWAY
 * INTERNAL_ERROR: the rapid-reset defence).
 *
 * The reset limit is nghttp2's own (Node bundles it): a session that
 * receives more than 1,000 RST_STREAM frames (a token bucket refilled at
 * 33 per second) is sent GOAWAY INTERNAL_ERROR with the last stream it
 * received, and what was in flight on it is lost.  Every request
 * processed is in requests.jsonl, so a test counts pushes per token.
 *
 * --goaway-after N: on every session, once N sends arrived, GOAWAY with
 *   last-stream-id = the highest stream already acted on (graceful) or
 *   the N-th one's if higher (hard) ({"ev":"goaway_sent",
 *   "session","last","mode"}).  Streams above it are not processed,
 *   also those held by a "delay" rule and not yet acted on
 *   ({"ev":"refused_after_goaway","session","stream","token"}: RST
 *   REFUSED_STREAM, the client may send them again, RFC 9113 8.7).
 *   --goaway-mode graceful (default): streams up to last are answered,
 *   then the session closes.  hard: they are processed (counted) but the
 *   connection is destroyed before any answer goes out, as a server
 *   that dies ({"ev":"unanswered","session","stream","token"} each): the
 *   client cannot know their fate.  The answers of the last second before
 *   the death are logged too ({"ev":"answered_at_death",...}): the reset
 *   may discard them unread.
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
        kid: null, clientEmail: null, project: null, aud: null,
        tokenTtl: 3600, tokenLifetime: null, store: null, control: null,
        maxStreams: 100, stats: false, noContentLength: false,
        goawayAfter: 0, goawayMode: 'graceful',
    };
    const names = {
        '--port': 'port', '--port-file': 'portFile', '--cert': 'cert',
        '--key': 'key', '--public-key': 'publicKey', '--kid': 'kid',
        '--client-email': 'clientEmail', '--project': 'project',
        '--aud': 'aud', '--token-ttl': 'tokenTtl',
        '--token-lifetime': 'tokenLifetime', '--store': 'store',
        '--control': 'control', '--max-streams': 'maxStreams',
        '--goaway-after': 'goawayAfter', '--goaway-mode': 'goawayMode',
    };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--stats') { o.stats = true; continue; }
        if (a === '--no-content-length') { o.noContentLength = true; continue; }
        if (!(a in names) || i + 1 >= argv.length) {
            process.stderr.write(`fake_fcm: unknown or incomplete option ${a}\n`);
            process.exit(2);
        }
        o[names[a]] = argv[++i];
    }
    for (const k of ['port', 'tokenTtl', 'maxStreams', 'goawayAfter'])
        o[k] = Number(o[k]);
    o.tokenLifetime = o.tokenLifetime == null ? o.tokenTtl : Number(o.tokenLifetime);
    for (const k of ['cert', 'key', 'publicKey', 'kid', 'clientEmail', 'project']) {
        if (!o[k]) {
            process.stderr.write(`fake_fcm: --${k.replace(/[A-Z]/g, c => '-' + c.toLowerCase())} is required\n`);
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
let used = new Map(); /* rule index + token -> times used */

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

let tokenFaultsUsed = 0;
function tokenFault() {
    loadControl();
    const t = control.token;
    if (!t || !t.action) return null;
    if (t.times != null && tokenFaultsUsed >= t.times) return null;
    tokenFaultsUsed++;
    return t;
}

/* ------------------------------------------------------------ answers */

const stats = { sessions: 0, tokens: 0, sends: 0, accepted: 0, refused: 0 };

function send(res, status, obj, headers) {
    const body = typeof obj === 'string' ? obj : JSON.stringify(obj);
    const cl = opt.noContentLength ? {} : { 'content-length': Buffer.byteLength(body) };
    res.writeHead(status, Object.assign(cl, {
        'content-type': typeof obj === 'string' ? 'text/html; charset=UTF-8'
            : 'application/json; charset=UTF-8',
    }, headers || {}));
    res.end(body);
}

const STATUS = {
    400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
    404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE',
};

function fcmError(code, message, errorCode, extraDetails) {
    const details = [];
    if (errorCode)
        details.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode });
    for (const d of extraDetails || []) details.push(d);
    const e = { code, message, status: STATUS[code] || 'UNKNOWN' };
    if (details.length) e.details = details;
    return { error: e };
}

function badRequest(message, field) {
    return fcmError(400, message, 'INVALID_ARGUMENT', field ? [{
        '@type': 'type.googleapis.com/google.rpc.BadRequest',
        fieldViolations: [{ field, description: message }],
    }] : null);
}

/* ------------------------------------------------------------ token endpoint */

const tokens = new Map(); /* access token -> {id, issued, expires} */
let tokenSeq = 0;

function b64urlJson(s) {
    try { return JSON.parse(Buffer.from(s, 'base64url').toString('utf8')); }
    catch (e) { return null; }
}

/* Returns null if the assertion is good, else the reason. */
function checkAssertion(jwt, aud) {
    const parts = typeof jwt === 'string' ? jwt.split('.') : [];
    if (parts.length !== 3) return 'Invalid JWT: not three parts';
    const h = b64urlJson(parts[0]), c = b64urlJson(parts[1]);
    if (!h || !c) return 'Invalid JWT: header or claims are not JSON';
    if (h.alg !== 'RS256') return `Invalid JWT: alg must be RS256, not ${h.alg}`;
    if (h.typ !== undefined && h.typ !== 'JWT') return 'Invalid JWT: typ';
    if (h.kid !== opt.kid) return 'Invalid JWT Signature. (unknown kid)';
    const ok = crypto.verify('RSA-SHA256', Buffer.from(parts[0] + '.' + parts[1]),
        publicKey, Buffer.from(parts[2], 'base64url'));
    if (!ok) return 'Invalid JWT Signature.';
    if (c.iss !== opt.clientEmail) return 'Invalid JWT: iss is not the service account';
    const scopes = typeof c.scope === 'string' ? c.scope.split(' ') : [];
    if (!scopes.includes('https://www.googleapis.com/auth/firebase.messaging') &&
        !scopes.includes('https://www.googleapis.com/auth/cloud-platform'))
        return 'Invalid JWT: scope lacks firebase.messaging';
    if (c.aud !== aud) return `Invalid JWT: aud must be ${aud}`;
    const t = now();
    if (!Number.isInteger(c.iat) || !Number.isInteger(c.exp))
        return 'Invalid JWT: iat and exp must be integers';
    if (Math.abs(c.iat - t) > 300 || c.exp <= t || c.exp <= c.iat || c.exp - c.iat > 3600)
        return 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a ' +
            'reasonable timeframe. Check your iat and exp values in the JWT claim.';
    return null;
}

function onToken(req, res, body) {
    const fault = tokenFault();
    if (fault && fault.action === 'stall') return;
    if (fault && /^\d+$/.test(String(fault.action))) {
        writeEvent({ ev: 'token_refused', reason: 'fault ' + fault.action, ts: now() });
        return send(res, Number(fault.action), { error: 'internal_failure' });
    }
    const ct = String(req.headers['content-type'] || '');
    const aud = opt.aud || `https://127.0.0.1:${server.address().port}/token`;
    let reason = null;
    let form = null;
    if (req.method !== 'POST') reason = 'method must be POST';
    else if (!ct.startsWith('application/x-www-form-urlencoded')) reason = 'content-type must be a form';
    else {
        form = new URLSearchParams(body.toString('utf8'));
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
            writeEvent({ ev: 'token_refused', reason: 'grant_type', ts: now() });
            return send(res, 400, { error: 'unsupported_grant_type',
                error_description: 'Invalid grant_type: ' + form.get('grant_type') });
        }
        reason = checkAssertion(form.get('assertion'), aud);
    }
    if (!reason && fault && fault.action === 'invalid_grant') reason = 'fault invalid_grant';
    if (reason) {
        writeEvent({ ev: 'token_refused', reason, ts: now() });
        return send(res, 400, { error: 'invalid_grant', error_description: reason });
    }
    const tok = 'ya29.fake-' + crypto.randomBytes(24).toString('base64url');
    const id = 't' + (++tokenSeq);
    tokens.set(tok, { id, issued: now(), expires: now() + opt.tokenLifetime });
    stats.tokens++;
    writeEvent({ ev: 'token', id, ts: now(), expires_in: opt.tokenTtl, lifetime: opt.tokenLifetime });
    send(res, 200, { access_token: tok, expires_in: opt.tokenTtl, token_type: 'Bearer' });
}

/* ------------------------------------------------------------ message check */

const MSG_FIELDS = new Set(['name', 'data', 'notification', 'android', 'webpush', 'apns',
    'fcm_options', 'fcmOptions', 'token', 'topic', 'condition']);
const ANDROID_FIELDS = new Set(['collapse_key', 'collapseKey', 'priority', 'ttl',
    'restricted_package_name', 'restrictedPackageName', 'data', 'notification',
    'fcm_options', 'fcmOptions', 'direct_boot_ok', 'directBootOk']);
const APNS_FIELDS = new Set(['headers', 'payload', 'fcm_options', 'fcmOptions']);
const NOTIF_FIELDS = new Set(['title', 'body', 'image']);
const PUSH_TYPES = new Set(['alert', 'background', 'location', 'voip', 'complication',
    'fileprovider', 'mdm', 'liveactivity', 'pushtotalk', 'widgets']);

const isObj = v => v !== null && typeof v === 'object' && !Array.isArray(v);

function unknown(obj, allowed, where) {
    for (const k of Object.keys(obj)) {
        if (!allowed.has(k))
            return `Invalid JSON payload received. Unknown name "${k}" at '${where}': Cannot find field.`;
    }
    return null;
}

function stringMap(obj, where) {
    if (!isObj(obj)) return [`${where} must be an object`, where];
    for (const [k, v] of Object.entries(obj)) {
        if (typeof v !== 'string')
            return [`Invalid value at '${where}[${k}]' (TYPE_STRING), ${JSON.stringify(v)}`, `${where}[${k}]`];
    }
    return null;
}

/* Returns null or [message, field] for a 400 INVALID_ARGUMENT. */
function checkRequest(body) {
    if (body.length > 4096)
        return [`Message is too big (${body.length} bytes; at most 4096)`, 'message'];
    let req;
    try { req = JSON.parse(body.toString('utf8')); }
    catch (e) { return ['Invalid JSON payload received. ' + e.message, null]; }
    if (!isObj(req)) return ['Invalid JSON payload received. Not an object.', null];
    let e = unknown(req, new Set(['message', 'validate_only', 'validateOnly']), '');
    if (e) return [e, null];
    const m = req.message;
    if (!isObj(m)) return ['Request contains an invalid argument: message is required', 'message'];
    if ((e = unknown(m, MSG_FIELDS, 'message'))) return [e, 'message'];
    const targets = ['token', 'topic', 'condition'].filter(k => m[k] !== undefined);
    if (targets.length !== 1)
        return ['Exactly one of message.token, message.topic or message.condition must be given', 'message'];
    for (const k of targets) {
        if (typeof m[k] !== 'string' || m[k] === '')
            return [`Invalid value at 'message.${k}'`, `message.${k}`];
    }
    if (m.token !== undefined && !/^[A-Za-z0-9_:\-]{1,4096}$/.test(m.token))
        return ['The registration token is not a valid FCM registration token', 'message.token'];
    if (m.topic !== undefined && (m.topic.startsWith('/topics/') || !/^[a-zA-Z0-9\-_.~%]+$/.test(m.topic)))
        return ['Invalid topic name', 'message.topic'];
    if (m.data !== undefined) {
        if ((e = stringMap(m.data, 'message.data'))) return e;
        for (const k of Object.keys(m.data)) {
            if (k === 'from' || k === 'message_type' || /^(google|gcm)/.test(k))
                return [`Invalid data payload key: ${k} is reserved`, `message.data[${k}]`];
        }
    }
    if (m.notification !== undefined) {
        if (!isObj(m.notification)) return ['message.notification must be an object', 'message.notification'];
        if ((e = unknown(m.notification, NOTIF_FIELDS, 'message.notification'))) return [e, 'message.notification'];
        for (const [k, v] of Object.entries(m.notification)) {
            if (typeof v !== 'string') return [`Invalid value at 'message.notification.${k}'`, `message.notification.${k}`];
        }
    }
    const a = m.android;
    if (a !== undefined) {
        if (!isObj(a)) return ['message.android must be an object', 'message.android'];
        if ((e = unknown(a, ANDROID_FIELDS, 'message.android'))) return [e, 'message.android'];
        if (a.priority !== undefined && a.priority !== 'NORMAL' && a.priority !== 'HIGH')
            return [`Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), "${a.priority}"`, 'message.android.priority'];
        if (a.ttl !== undefined) {
            const mt = typeof a.ttl === 'string' ? /^(\d+)(\.\d{1,9})?s$/.exec(a.ttl) : null;
            if (!mt) return [`Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), "${a.ttl}"`, 'message.android.ttl'];
            if (Number(mt[1]) > 2419200) return ['TTL must be at most 4 weeks', 'message.android.ttl'];
        }
        for (const k of ['collapse_key', 'collapseKey']) {
            if (a[k] !== undefined && typeof a[k] !== 'string') return [`Invalid value at 'message.android.${k}'`, `message.android.${k}`];
        }
        if (a.data !== undefined && (e = stringMap(a.data, 'message.android.data'))) return e;
    }
    const p = m.apns;
    if (p !== undefined) {
        if (!isObj(p)) return ['message.apns must be an object', 'message.apns'];
        if ((e = unknown(p, APNS_FIELDS, 'message.apns'))) return [e, 'message.apns'];
        if (p.headers !== undefined) {
            if ((e = stringMap(p.headers, 'message.apns.headers'))) return e;
            const h = p.headers;
            if (h['apns-priority'] !== undefined && !['10', '5', '1'].includes(h['apns-priority']))
                return ['Invalid APNs header apns-priority', 'message.apns.headers'];
            if (h['apns-push-type'] !== undefined && !PUSH_TYPES.has(h['apns-push-type']))
                return ['Invalid APNs header apns-push-type', 'message.apns.headers'];
            if (h['apns-expiration'] !== undefined && !/^\d+$/.test(h['apns-expiration']))
                return ['Invalid APNs header apns-expiration', 'message.apns.headers'];
            if (h['apns-collapse-id'] !== undefined && Buffer.byteLength(h['apns-collapse-id']) > 64)
                return ['apns-collapse-id is longer than 64 bytes', 'message.apns.headers'];
        }
        if (p.payload !== undefined && !isObj(p.payload)) return ['message.apns.payload must be an object', 'message.apns.payload'];
    }
    if (m.webpush !== undefined && !isObj(m.webpush)) return ['message.webpush must be an object', 'message.webpush'];
    return [null, m, req];
}

/* ------------------------------------------------------------ sends */

let msgSeq = 0;

function sessionOf(req) {
    const s = req.stream ? req.stream.__session || req.stream.session : null;
    if (s && s.__kid) return s.__kid;
    return req.socket && req.socket.__kid ? req.socket.__kid : null;
}

/*
 * --goaway-after: count the sends of an h2 session; at the N-th, GOAWAY.
 * Returns true when this request must not be processed (above the last
 * stream id of a GOAWAY already sent).
 */
function refusedByGoaway(st, token) {
    const s = st.__session;
    if (!s || s.__goawayLast == null || st.id <= s.__goawayLast) return false;
    writeEvent({ ev: 'refused_after_goaway', session: s.__kid, stream: st.id, token, ts: now() });
    st.__ourReset = true;
    if (!st.destroyed) st.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return true;
}

function goawayGate(req, body) {
    const st = req.stream;
    if (!opt.goawayAfter || !st || !st.__session) return false;
    const s = st.__session;
    let token = null;
    try { token = JSON.parse(body).message.token; } catch (e) { /* none */ }
    if (refusedByGoaway(st, token)) return true;
    s.__sends = (s.__sends || 0) + 1;
    if (s.__sends === opt.goawayAfter && s.__goawayLast == null) {
        /* graceful: the last stream acted on, so that what a "delay"
         * rule holds (not acted on yet) is refused, see accept(); hard:
         * the N-th, or a later stream already acted on. */
        const last = opt.goawayMode === 'hard' || !s.__maxAccepted
            ? Math.max(st.id, s.__maxAccepted || 0) : s.__maxAccepted;
        s.__goawayLast = last;
        writeEvent({ ev: 'goaway_sent', session: s.__kid, last, mode: opt.goawayMode, ts: now() });
        s.goaway(http2.constants.NGHTTP2_NO_ERROR, last);
        if (opt.goawayMode === 'hard') {
            /* Processed, never answered: the connection dies now.  The
             * answers written just before may die with it (the reset
             * discards what the client had not read yet): each answered
             * in the last second is logged, {"ev":"answered_at_death"}. */
            s.__dead = true;
            setImmediate(() => {
                const t = now();
                for (const a of s.__answered || [])
                    if (a.ts >= t - 1)
                        writeEvent({ ev: 'answered_at_death', session: s.__kid,
                            stream: a.stream, token: a.token, ts: t });
                s.destroy();
            });
        }
        /* graceful: the streams up to last are answered as usual; the
         * client closes the connection when it has their answers. */
    }
    return false;
}

function onSend(req, res, body, project) {
    const t = now();
    const proto = req.httpVersion;
    const session = sessionOf(req);
    const ev = { ev: 'send', ts: t, proto, session, auth: null, token: null };
    stats.sends++;
    const refuse = (status, obj, code, headers) => {
        stats.refused++;
        ev.status = status;
        ev.code = code;
        writeEvent(ev);
        send(res, status, obj, headers);
    };
    /* Authorization first, as Google does. */
    const auth = String(req.headers['authorization'] || '');
    const mt = /^Bearer (\S+)$/.exec(auth);
    if (!mt)
        return refuse(401, fcmError(401, 'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.'), 'MISSING');
    const tok = tokens.get(mt[1]);
    if (!tok)
        return refuse(401, fcmError(401, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.'), 'UNKNOWN');
    ev.auth = tok.id;
    if (t >= tok.expires)
        return refuse(401, fcmError(401, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.'), 'EXPIRED');
    if (project !== opt.project)
        return refuse(403, fcmError(403, `Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/${project}' (or it may not exist).`), 'PERMISSION_DENIED');
    const ct = String(req.headers['content-type'] || '');
    if (!ct.startsWith('application/json'))
        return refuse(400, badRequest('Content-Type must be application/json'), 'INVALID_ARGUMENT');
    const [err, m] = checkRequest(body);
    if (err) {
        ev.reason = err;
        return refuse(400, badRequest(err, m), 'INVALID_ARGUMENT');
    }
    const target = m.token || m.topic || m.condition;
    ev.token = target;
    const rule = pickRule(target);
    if (rule) {
        ev.rule = rule.action;
        const ra = rule.retry_after != null ? { 'retry-after': String(rule.retry_after) } : {};
        switch (String(rule.action)) {
        case '400': return refuse(400, badRequest(rule.message || 'The registration token is not a valid FCM registration token', 'message.token'), 'INVALID_ARGUMENT');
        case '401': return refuse(401, fcmError(401, rule.message || 'Auth error from APNS or Web Push Service', 'THIRD_PARTY_AUTH_ERROR'), 'THIRD_PARTY_AUTH_ERROR');
        case '403': return refuse(403, fcmError(403, rule.message || 'SenderId mismatch', 'SENDER_ID_MISMATCH'), 'SENDER_ID_MISMATCH');
        case '404': return refuse(404, fcmError(404, rule.message || 'Requested entity was not found.', 'UNREGISTERED'), 'UNREGISTERED');
        case '429': return refuse(429, fcmError(429, rule.message || 'Quota exceeded for quota metric', 'QUOTA_EXCEEDED'), 'QUOTA_EXCEEDED', ra);
        case '500': return refuse(500, fcmError(500, rule.message || 'Internal error encountered.', 'INTERNAL'), 'INTERNAL', ra);
        case '503': return refuse(503, fcmError(503, rule.message || 'The service is currently unavailable.', 'UNAVAILABLE'), 'UNAVAILABLE', ra);
        case 'garbage': return refuse(502, '<html><body>502 Bad Gateway</body></html>', 'GARBAGE');
        case 'stall':
            ev.status = 0; ev.code = 'STALL'; writeEvent(ev);
            return; /* never answered; the client times out */
        case 'reset':
            ev.status = 0; ev.code = 'RESET'; writeEvent(ev);
            if (req.stream) {
                req.stream.__ourReset = true;
                req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
            }
            else req.socket.destroy();
            return;
        case 'drop':
            ev.status = 0; ev.code = 'DROP'; writeEvent(ev);
            if (req.stream) req.stream.session.destroy();
            else req.socket.destroy();
            return;
        case 'delay':
            setTimeout(() => accept(req, res, body, m, ev), (rule.seconds || 1) * 1000);
            return;
        default:
            break;
        }
    }
    accept(req, res, body, m, ev);
}

function accept(req, res, body, m, ev) {
    const st0 = req.stream;
    if (opt.goawayAfter && st0 && refusedByGoaway(st0, m.token)) return;
    if (st0 && st0.__session)
        st0.__session.__maxAccepted = Math.max(st0.__session.__maxAccepted || 0, st0.id);
    const name = `projects/${opt.project}/messages/${Date.now()}${String(++msgSeq).padStart(6, '0')}`;
    stats.accepted++;
    ev.status = 200;
    ev.code = 'OK';
    writeEvent(ev);
    writeRequest({ ts: now(), token: m.token || m.topic || m.condition, message: m,
        proto: ev.proto, session: ev.session, auth: ev.auth, bytes: body.length, name });
    const st = req.stream;
    if (st && (st.__session.__dead || st.destroyed || st.session == null)) {
        /* Processed, and no way left to answer it. */
        writeEvent({ ev: 'unanswered', session: st.__session.__kid, stream: st.id,
            token: m.token, ts: now() });
        return;
    }
    if (st && st.__session && opt.goawayMode === 'hard') {
        const s = st.__session;
        s.__answered = (s.__answered || []).filter((a) => a.ts >= now() - 2);
        s.__answered.push({ stream: st.id, token: m.token, ts: now() });
    }
    send(res, 200, { name });
}

/* ------------------------------------------------------------ server */

let sessionSeq = 0;
const server = http2.createSecureServer({
    cert: fs.readFileSync(opt.cert),
    key: fs.readFileSync(opt.key),
    allowHTTP1: true,
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

/* Node emits 'session' for an h2 connection before our 'secureConnection'
 * listener runs: h2 sessions are numbered there, HTTP/1.1 sockets here. */
server.on('secureConnection', sock => {
    if (sock.alpnProtocol === 'h2')
        return;
    sock.__kid = ++sessionSeq;
    stats.sessions++;
    writeEvent({ ev: 'session', session: sock.__kid, alpn: sock.alpnProtocol || null, ts: now() });
    sock.on('close', () => writeEvent({ ev: 'session_close', session: sock.__kid, ts: now() }));
});
server.on('session', s => {
    s.__kid = ++sessionSeq;
    stats.sessions++;
    writeEvent({ ev: 'session', session: s.__kid, alpn: 'h2', ts: now() });
    s.on('error', e => writeEvent({ ev: 'session_error', session: s.__kid,
        error: String(e && (e.code || e.message)), ts: now() }));
    s.on('goaway', (code, last) => writeEvent({ ev: 'goaway_received', session: s.__kid,
        code, last, ts: now() }));
    s.on('frameError', (type, code, id) => writeEvent({ ev: 'frame_error', session: s.__kid,
        type, code, stream: id, ts: now() }));
    s.on('close', () => writeEvent({ ev: 'session_close', session: s.__kid, ts: now() }));
    s.on('stream', st => (st.__session = s) && st.on('close', () => {
        if (st.rstCode) writeEvent({ ev: 'stream_reset', session: s.__kid, stream: st.id,
            code: st.rstCode, by: st.__ourReset ? 'server' : 'client', ts: now() });
    }));
});

server.on('request', (req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', c => {
        size += c.length;
        if (size <= 1 << 20) chunks.push(c);
    });
    req.on('end', () => {
        const body = Buffer.concat(chunks);
        const url = new URL(req.url, 'https://127.0.0.1');
        const cl = req.headers['content-length'];
        if (cl !== undefined && Number(cl) !== size) {
            /* The stream ended early (reset, connection gone): a server
             * never acts on half a request. */
            writeEvent({ ev: 'incomplete', session: sessionOf(req), bytes: size,
                content_length: Number(cl), ts: now() });
            return;
        }
        const mt = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url.pathname);
        if (url.pathname === '/token')
            return onToken(req, res, body);
        if (mt && req.method === 'POST') {
            if (goawayGate(req, body)) return;
            return onSend(req, res, body, decodeURIComponent(mt[1]));
        }
        /* Google's front end answers unknown paths with an HTML page. */
        writeEvent({ ev: 'send', ts: now(), status: 404, code: 'BAD_PATH', path: url.pathname,
            proto: req.httpVersion, session: sessionOf(req) });
        send(res, 404, '<html><body>Error 404 (Not Found)</body></html>');
    });
    req.on('error', () => {});
});
server.on('sessionError', () => {});
server.on('clientError', () => {});

server.listen(opt.port, '127.0.0.1', () => {
    const port = server.address().port;
    if (opt.portFile) {
        const tmp = opt.portFile + '.tmp';
        fs.writeFileSync(tmp, String(port));
        fs.renameSync(tmp, opt.portFile);
    }
    process.stderr.write(`fake_fcm: listening on 127.0.0.1:${port}\n`);
});

function stop() {
    if (opt.stats) process.stderr.write('fake_fcm: stats ' + JSON.stringify(stats) + '\n');
    server.close();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
