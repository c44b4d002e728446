#!/usr/bin/python3
"""test_push_provider.py - the push providers (FCM, APNs) answering in ways
their documentation allows but the happy path never meets, end to end
through kairand with tests/fakes/fake_fcm.js and fake_apns.js.

  [1] FCM refuses every access token at once (401 UNAUTHENTICATED; a
      proxy that strips Authorization does the same) -> the token endpoint
      is asked a bounded number of times, not once per job in flight, and
      no job is sent more than a few times; the jobs stay unfailed
      (tempfail with the auth hint: credentials, not recipients).
  [2] the token endpoint announces an absurd expires_in (beyond 64 bits
      in milliseconds) -> the token is used, not fetched again per job.
  [3] APNs answers 400 DeviceTokenNotForTopic for one recipient's token
      (a token of another app) -> that job fails, the push route does not
      pause: the next broadcast goes out at once, FCM and APNs.
  [4] FCM answers 401 THIRD_PARTY_AUTH_ERROR for an iPhone's token ->
      that job fails once (PROVIDERS.md 8: not retried), Android pushes
      are not held up.
  [5] the token endpoint fails while the access token is in its renewal
      margin -> the renewal backs off, it is not asked again per job.
  [6] APNs answers 400 BadDeviceToken for every token (sandbox tokens on
      the production host) -> no token marked dead until APNs has
      accepted a notification from this configuration; after that a
      BadDeviceToken marks its token dead.  The same for FCM's
      SENDER_ID_MISMATCH (a service account of another project).
  [7] APNs refuses our provider token (403 InvalidProviderToken) -> APNs
      sends pause, FCM sends on the same push route do not.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_push_provider.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("push_provider")

SUBJECT = "【緊急】台風接近に伴う臨時休校"
BODY = "保護者各位\n明日は臨時休校とします。"
QUEUE = {"retry_base_ms": "100", "retry_cap_ms": "500", "max_attempts": "4"}
NO_HTTP = {"listen": ""}


def fcm_token(tag, i):
    return "c%s%04d:APA91bH-%s_%04d-kairanTestToken" % (tag, i, tag, i)


def bcast(recipients, **kw):
    b = {"tenant": "sakura-hs", "category": "emergency", "priority": "urgent",
         "subject": SUBJECT, "body": BODY, "channels": ["push"],
         "policy": "all", "recipients": recipients}
    b.update(kw)
    return b


def rcpt(rid, fcm=None, apns=None):
    p = []
    if fcm:
        p.append({"platform": "fcm", "token": fcm})
    if apns:
        p.append({"platform": "apns", "token": apns})
    return {"id": rid, "push": p}


r = Redis(out)

# ---------------------------------------------------------------- [1]
# Every access token the fake issues is refused at once (lifetime 0).
# Each job may be re-sent once with a new token; a request refused with a
# token already replaced goes again with the new one.  What must not
# happen: every round of refusals costing a new token and a new round of
# sends for all the others (K jobs in flight -> K token requests and
# K*K/2 sends).
N = 40
fcm1 = FakeFCM(out, name="fcm1", token_lifetime=0)
k1 = Kairan(out, r, name="kairan1", conf={
    "routes": {"push": "push"}, "fcm": fcm1.conf(connections=1),
    "queue": QUEUE, "http": NO_HTTP})
d1 = k1.start()
with tap.check("[1] FCM refuses every access token: bounded token requests and sends"):
    toks = [fcm_token("ref", i) for i in range(N)]
    bid = k1.submit(bcast([rcpt("r1-%d" % i, fcm=toks[i]) for i in range(N)]))
    # the first round of answers, and whatever storm follows it
    wait_for(lambda: len([e for e in fcm1.sends() if e.get("status") == 401]) >= N,
             20, what="every job refused once")
    time.sleep(4)
    issued = fcm1.token_events()
    # (a request refused for its Authorization is not read further: the
    # fake records no device token for it)
    sends = fcm1.sends()
    tap.diag("[1] tokens issued %d, sends %d for %d jobs"
             % (len(issued), len(sends), N))
    assert not [e for e in sends if e.get("status") == 200], "a refused token delivered?"
    # the first token, and one more after the first refusal; not one per job
    assert len(issued) <= 3, "token endpoint asked %d times" % len(issued)
    assert len(sends) <= 3 * N, "%d sends for %d jobs" % (len(sends), N)
    c = k1.counts(bid).get("push", {})
    assert not c.get("failed"), c
d1.stop()
fcm1.stop()

# ---------------------------------------------------------------- [2]
# A token endpoint announcing an absurd lifetime (expires_in in the
# quadrillions: times 1000 it no longer fits 64 bits).  The token is
# good; it must be used, not taken for expired and fetched again for
# every job.
fcm2 = FakeFCM(out, name="fcm2", token_ttl=9300000000000000)
k2 = Kairan(out, r, name="kairan2", conf={
    "routes": {"push": "push"}, "fcm": fcm2.conf(connections=1),
    "queue": QUEUE, "http": NO_HTTP})
d2 = k2.start()
with tap.check("[2] FCM token with an absurd expires_in: used, not fetched per job"):
    for b in range(3):
        bid = k2.submit(bcast([rcpt("r2-%d-%d" % (b, i), fcm=fcm_token("abs%d" % b, i))
                               for i in range(10)]))
        k2.wait_done(bid, 30)
        c = k2.counts(bid).get("push", {})
        assert c.get("delivered") == 10, c
    issued = fcm2.token_events()
    tap.diag("[2] tokens issued %d for 30 sends" % len(issued))
    assert len(issued) == 1, "token endpoint asked %d times" % len(issued)
d2.stop()
fcm2.stop()

# ---------------------------------------------------------------- [3]
# One recipient's APNs token belongs to another app (400
# DeviceTokenNotForTopic: a token of a former or sibling app, or one a
# guardian registered on purpose).  That job fails; the push route (FCM
# and APNs alike) must not stop for the others.
def apns_token(tag, i):
    return ("%s%04d" % (tag, i)).ljust(64, "0")


fcm3 = FakeFCM(out, name="fcm3")
apns3 = FakeAPNs(out, name="apns3", control={"rules": [
    {"match": "bad3", "action": "400", "reason": "DeviceTokenNotForTopic"}]})
k3 = Kairan(out, r, name="kairan3", conf={
    "routes": {"push": "push"}, "fcm": fcm3.conf(connections=1),
    "apns": apns3.conf(connections=1), "queue": QUEUE, "http": NO_HTTP})
d3 = k3.start()
with tap.check("[3] an APNs token of another app fails alone: no pause of the push route"):
    bid = k3.submit(bcast([rcpt("r3-bad", apns=apns_token("bad3", 0))]))
    k3.wait_done(bid, 30)
    c = k3.counts(bid).get("push", {})
    assert c.get("failed") == 1, c
    t = time.monotonic()
    bid = k3.submit(bcast([rcpt("r3-%d" % i, fcm=fcm_token("ok3", i),
                                apns=apns_token("c3", i)) for i in range(10)]))
    k3.wait_done(bid, 60)
    took = time.monotonic() - t
    tap.diag("[3] next broadcast done in %.2fs" % took)
    c = k3.counts(bid).get("push", {})
    assert c.get("delivered") == 20, c
    assert took < 10, "the next broadcast waited %.1fs (route paused)" % took
    assert "route paused" not in d3.stderr_text()
d3.stop()
fcm3.stop()
apns3.stop()

# ---------------------------------------------------------------- [4]
# FCM answers 401 THIRD_PARTY_AUTH_ERROR for a token of an iPhone (the
# project's APNs key in Firebase is missing or wrong): permanent for that
# token (PROVIDERS.md 8: "don't retry"), and no reason to stop the
# Android tokens of the same route.
fcm4 = FakeFCM(out, name="fcm4", control={"rules": [
    {"match": "ios4", "action": "401"}]})
k4 = Kairan(out, r, name="kairan4", conf={
    "routes": {"push": "push"}, "fcm": fcm4.conf(connections=1),
    "queue": QUEUE, "http": NO_HTTP})
d4 = k4.start()
with tap.check("[4] FCM THIRD_PARTY_AUTH_ERROR: that job fails, Android pushes go on"):
    bid = k4.submit(bcast([rcpt("r4-ios", fcm=fcm_token("ios4", 0))]))
    k4.wait_done(bid, 20)
    c = k4.counts(bid).get("push", {})
    assert c.get("failed") == 1, c
    t = time.monotonic()
    bid = k4.submit(bcast([rcpt("r4-%d" % i, fcm=fcm_token("and4", i))
                           for i in range(10)]))
    k4.wait_done(bid, 60)
    took = time.monotonic() - t
    tap.diag("[4] next broadcast done in %.2fs" % took)
    assert k4.counts(bid).get("push", {}).get("delivered") == 10
    assert took < 10, "the next broadcast waited %.1fs (route paused)" % took
    n = len([e for e in fcm4.sends() if e.get("code") == "THIRD_PARTY_AUTH_ERROR"])
    assert n == 1, "THIRD_PARTY_AUTH_ERROR sent %d times" % n
d4.stop()
fcm4.stop()

# ---------------------------------------------------------------- [5]
# The token endpoint fails (500 at once) while the current access token
# is in its renewal margin (the last quarter of its life, at most 5
# minutes): the token still works and the sends go on with it, but the
# renewal must back off like any other token failure, not be asked
# again for every job sent meanwhile.
DELAY5 = {"rules": [{"match": "", "action": "delay", "seconds": 0.1}]}
fcm5 = FakeFCM(out, name="fcm5", token_ttl=8, control=DELAY5)
k5 = Kairan(out, r, name="kairan5", conf={
    "routes": {"push": "push"}, "fcm": fcm5.conf(connections=1),
    "queue": QUEUE, "http": NO_HTTP})
d5 = k5.start()
with tap.check("[5] token endpoint failing during the renewal margin: backed off, not asked per job"):
    bid = k5.submit(bcast([rcpt("r5-%d" % i, fcm=fcm_token("five", i)) for i in range(3)]))
    k5.wait_done(bid, 20)
    t_issue = fcm5.token_events()[0]["ts"]
    fcm5.set_control(dict(DELAY5, token={"action": "500", "times": 100000}))
    # the margin of an 8 s token is its last 2 s: from 6 s after issue
    time.sleep(max(0.0, t_issue + 6.1 - time.time()))
    bid = k5.submit(bcast([rcpt("r5b-%d" % i, fcm=fcm_token("fiveb", i))
                           for i in range(200)]))
    time.sleep(max(0.0, t_issue + 7.9 - time.time()))
    refused = [e for e in fcm5.events("token_refused")
               if e["ts"] < t_issue + 7.9]
    sent = [e for e in fcm5.sends() if e.get("status") == 200
            and t_issue + 6 <= e["ts"] < t_issue + 7.9]
    tap.diag("[5] in the margin: %d sends, %d token requests refused"
             % (len(sent), len(refused)))
    assert sent, "nothing sent in the margin (too slow?)"
    # a first try and its back-off retries (1 s, 2 s): never one per job
    assert len(refused) <= 3, "%d token requests in 1.8 s" % len(refused)
d5.stop()
fcm5.stop()

# ---------------------------------------------------------------- [6]
# APNs answers 400 BadDeviceToken for every token: a sandbox app's tokens
# sent to the production host (apns.api_base) or the reverse - an
# environment mismatch, which PROVIDERS.md 3 says to rule out before a
# token is deleted.  A dead token is never sent to again (nothing marks
# it alive), so while APNs has accepted nothing from this configuration
# its BadDeviceToken must not mark tokens dead; once it has, it may.
apns6 = FakeAPNs(out, name="apns6", control={"rules": [
    {"match": "", "action": "400"}]})
k6 = Kairan(out, r, name="kairan6", conf={
    "routes": {"push": "push"}, "apns": apns6.conf(connections=1),
    "queue": QUEUE, "http": NO_HTTP})
d6 = k6.start()
with tap.check("[6] BadDeviceToken for every token (environment mismatch): none marked dead"):
    r.call("DEL", "kairan:dead:push")
    bid = k6.submit(bcast([rcpt("r6-%d" % i, apns=apns_token("e6", i)) for i in range(5)]))
    k6.wait_done(bid, 30)
    c = k6.counts(bid).get("push", {})
    assert c.get("failed") == 5, c
    n = r.call("SCARD", "kairan:dead:push")
    assert n == 0, "%d tokens marked dead by an environment mismatch" % n
with tap.check("[6] after an accepted notification, BadDeviceToken marks the token dead"):
    apns6.set_control({"rules": [{"match": "bad6", "action": "400"}]})
    bid = k6.submit(bcast([rcpt("r6-ok", apns=apns_token("c6", 0))]))
    k6.wait_done(bid, 30)
    r.call("DEL", "kairan:dead:push")
    bid = k6.submit(bcast([rcpt("r6-bad", apns=apns_token("bad6", 0))]))
    k6.wait_done(bid, 30)
    assert k6.counts(bid).get("push", {}).get("failed") == 1
    wait_for(lambda: r.call("SCARD", "kairan:dead:push") == 1, 10,
             what="the bad token marked dead")
d6.stop()
apns6.stop()

# The same for FCM's SENDER_ID_MISMATCH: every token answers it when the
# service account is of another Firebase project than the app's.
fcm6 = FakeFCM(out, name="fcm6", control={"rules": [
    {"match": "", "action": "403"}]})
k6f = Kairan(out, r, name="kairan6f", conf={
    "routes": {"push": "push"}, "fcm": fcm6.conf(connections=1),
    "queue": QUEUE, "http": NO_HTTP})
d6f = k6f.start()
with tap.check("[6] SENDER_ID_MISMATCH for every token (another project): none marked dead"):
    r.call("DEL", "kairan:dead:push")
    bid = k6f.submit(bcast([rcpt("r6f-%d" % i, fcm=fcm_token("six", i)) for i in range(5)]))
    k6f.wait_done(bid, 30)
    assert k6f.counts(bid).get("push", {}).get("failed") == 5
    n = r.call("SCARD", "kairan:dead:push")
    assert n == 0, "%d tokens marked dead by a project mismatch" % n
d6f.stop()
fcm6.stop()

# ---------------------------------------------------------------- [7]
# APNs refuses our provider token (403 InvalidProviderToken: the .p8 key
# revoked, say).  That pauses APNs sends until it is fixed; FCM's, on
# the same push route, have nothing to do with it and must go on.
fcm7 = FakeFCM(out, name="fcm7")
apns7 = FakeAPNs(out, name="apns7", control={"rules": [
    {"match": "", "action": "403"}]})
k7 = Kairan(out, r, name="kairan7", conf={
    "routes": {"push": "push"}, "fcm": fcm7.conf(connections=1),
    "apns": apns7.conf(connections=1), "queue": QUEUE, "http": NO_HTTP})
d7 = k7.start()
with tap.check("[7] APNs credentials refused: FCM pushes are not paused with them"):
    bid_a = k7.submit(bcast([rcpt("r7-a", apns=apns_token("a7", 0))]))
    wait_for(lambda: apns7.sends(), 10, what="the APNs refusal")
    time.sleep(0.3)
    t = time.monotonic()
    bid = k7.submit(bcast([rcpt("r7-%d" % i, fcm=fcm_token("sev7", i))
                           for i in range(10)]))
    k7.wait_done(bid, 60)
    took = time.monotonic() - t
    tap.diag("[7] FCM broadcast done in %.2fs" % took)
    assert k7.counts(bid).get("push", {}).get("delivered") == 10
    assert took < 10, "FCM waited %.1fs for APNs' credentials" % took
    # and the APNs job is kept (not failed) while its credentials are out
    assert not k7.counts(bid_a).get("push", {}).get("failed")
    k7.ctl("cancel", bid_a)
d7.stop()
fcm7.stop()
apns7.stop()

tap.diag("test_push_provider: %.1fs" % (time.monotonic() - T0))
tap.done()
