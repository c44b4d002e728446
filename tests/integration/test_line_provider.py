#!/usr/bin/python3
"""test_line_provider.py - LINE's token endpoint answering what its
specification does not promise, end to end through kairand with
tests/fakes/fake_line.py (v2.1 channel access tokens, JWT assertion).

  [1] the token endpoint announces an absurd expires_in (beyond 64 bits
      once multiplied to milliseconds) -> the token is used for the
      following jobs, not issued again per job; a channel may hold only
      --max-tokens (LINE: 30) valid v2.1 tokens, so a token per job would
      lock LINE out for the tokens' 30 days.
  [2] LINE refuses every request (401) while its token endpoint issues
      v2.1 tokens -> one new token after the first refusal, then the
      refused new one is kept: not a new v2.1 token every minute.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_line_provider.py
"""

import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("line_provider")


def uid():
    return "U" + secrets.token_hex(16)


def line_bcast(ids, prefix):
    return {"tenant": "sakura-hs", "category": "notice", "subject": "お知らせ",
            "body": "本文です。", "channels": ["line"],
            "recipients": [{"id": "%s-%d" % (prefix, i), "line": u}
                           for i, u in enumerate(ids)]}


priv = os.path.join(out, "assertion.pem")
pub = os.path.join(out, "assertion.pub.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:2048", "-out", priv], check=True,
               capture_output=True)
os.chmod(priv, 0o600)
subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub],
               check=True, capture_output=True)

# ---------------------------------------------------------------- [1]
line1 = FakeLine(out, "line1", ["--line-public-key", pub, "--kid", "kid-test-1",
                                "--channel-id", "1657000000",
                                "--token-expires-in", "9600000000000000",
                                "--max-tokens", "5"])
r = Redis(out)
k1 = Kairan(out, r, email="outbox", name="kairan1", conf={
    "routes": {"line": "line"},
    "line": {"api_base": line1.url, "token_url": line1.url + "/oauth2/v2.1/token",
             "channel_id": "1657000000", "key_file": priv, "key_id": "kid-test-1",
             "timeout_ms": "5s"},
    "queue": {"retry_base_ms": "100", "retry_cap_ms": "300", "max_attempts": "3"},
    "http": {"listen": ""},
})
d1 = k1.start()
with tap.check("[1] v2.1 token with an absurd expires_in: used, not issued per job"):
    for n in range(6):
        ids = [uid() for _ in range(2)]
        bid = k1.submit(line_bcast(ids, "a%d" % n))
        k1.wait_done(bid, 30)
        c = k1.counts(bid).get("line", {})
        assert c.get("delivered") == 2, (n, c)
    toks = [e for e in line1.events("token") if e["status"] == 200]
    tap.diag("[1] tokens issued %d for 6 broadcasts" % len(toks))
    assert len(toks) == 1, "%d tokens issued" % len(toks)
d1.stop()
line1.stop()

# ---------------------------------------------------------------- [2]
# LINE answers 401 to every request (a proxy that strips Authorization,
# say) while its token endpoint keeps issuing v2.1 tokens.  A channel may
# hold only 30 valid v2.1 tokens, each valid 30 days: a new token per
# minute of the refusal would use them up in half an hour and lock LINE
# out for a month (a restart could get none).  The first refusal drops
# the token and issues one more; a new token refused too is kept.
line2 = FakeLine(out, "line2", ["--line-public-key", pub, "--kid", "kid-test-1",
                                "--channel-id", "1657000000"])
line2.set_control({"rules": [{"action": "401"}]})
k2 = Kairan(out, r, email="outbox", name="kairan2", conf={
    "routes": {"line": "line"},
    "line": {"api_base": line2.url, "token_url": line2.url + "/oauth2/v2.1/token",
             "channel_id": "1657000000", "key_file": priv, "key_id": "kid-test-1",
             "timeout_ms": "5s"},
    "queue": {"retry_base_ms": "100", "retry_cap_ms": "300", "max_attempts": "3"},
    "http": {"listen": ""},
})
d2 = k2.start()
with tap.check("[2] every request refused (401): v2.1 tokens not issued once a minute"):
    bid = k2.submit(line_bcast([uid(), uid()], "b"))
    # the route pauses 30 s per refusal and the job comes back: past the
    # minute after the first drop, and a second retry after it
    time.sleep(66)
    toks = [e for e in line2.events("token") if e["status"] == 200]
    reqs = [e for e in line2.events("request") if str(e["status"]) == "401"]
    # a drop issues a new v2.1 token for the next job (30 s later here)
    drops = d2.stderr_text().count("dropped, a new one is issued")
    tap.diag("[2] %d requests refused, %d v2.1 tokens issued, %d dropped in 66 s"
             % (len(reqs), len(toks), drops))
    assert len(reqs) >= 3, "the job did not come back (%d requests)" % len(reqs)
    assert len(toks) <= 2, "%d v2.1 tokens issued" % len(toks)
    assert drops <= 1, "a refused new v2.1 token dropped again (%d drops)" % drops
    k2.ctl("cancel", bid)
d2.stop()
line2.stop()

tap.diag("test_line_provider: %.1fs" % (time.monotonic() - T0))
tap.done()
