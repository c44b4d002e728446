#!/usr/bin/python3
"""test_packaging.py - kairan shipped like a Debian daemon (issue 7).

  [deb]      dpkg-buildpackage -us -uc -b on a copy of the tree
             (DEB_BUILD_OPTIONS="nocheck parallel=2"); Build-Depends cover
             every pkg-config module and -l library of the Makefile; the
             .deb's Depends (shlibs), conffiles and modes; dpkg -x into a
             throwaway root and what landed where; the packaged
             kairan.conf passes kairand --check; versions agree with
             debian/changelog.
  [postinst] the package's postinst run against a sandbox (its paths
             rewritten, adduser/chown/getent/systemd helpers stubbed and
             recorded): user, /etc/kairan 0750 root:kairan, key file 0600
             owned by kairan made by kairanctl keygen, /var/lib/kairan,
             the unit enabled and never started; run again as an upgrade:
             the key is kept.
  [systemd]  systemd-analyze verify on all units (no output at all), the
             unit's required settings, systemd-analyze security < 2.0.
  [man]      mandoc -Tlint and man --warnings on each page: no warnings;
             every option, command, exit code and config key documented.
  [help]     --help and --version of kairand, kairanctl, kairan-backup;
             kairanctl CMD --help prints the help (keygen made no file);
             a bad option exits 2.
  [bash]     the completion completes commands, dlq subcommands, --json.
  [prom]     promtool check rules + promtool test rules (the alerts fire
             on what they should, only that); the dashboard's PromQL
             parses; its JSON has the expected panels; metric names are
             the ones kairand exposes; runbook anchors exist.
  [redis]    the Redis fragment loads (with its password hashes set):
             AOF everysec, noeviction; a placeholder left in refuses to
             start; every Redis command in kairan's sources is allowed
             to kairan's user (ACL DRYRUN) and dangerous ones are not;
             kairanctl + kairand deliver a broadcast through that user;
             kairan-backup works as the kairan-backup user.
  [backup]   3 backups with --keep 2 -> 2 generations (key 0600,
             SHA256SUMS, AOF dir); a restore into a new redis-server gives
             the same keys, also after AOF is turned on again; a damaged
             generation and a running Redis are refused; the files a
             restore replaces go into <dir>/replaced-<time>, deleted by the
             backup run after --keep days (retention.backup_days).
  [install]  make install / uninstall into a DESTDIR with PREFIX=/usr/local
             (and PREFIX=/usr).

Tools that are missing (debhelper, systemd, mandoc, prometheus for
promtool) skip their checks, naming the package to install.  Under
SANITIZE=1 only the checks of the built binaries run (the rest does not
depend on the build).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_packaging.py
"""

import glob
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("packaging")
SAN = os.environ.get("SANITIZE") == "1"
KAIRAND = os.path.join(BUILD, "kairand")
KAIRANCTL = os.path.join(BUILD, "kairanctl")
BACKUP = os.path.join(ROOT, "scripts", "backup.sh")

# What kairand's /metrics exposes (the operators issue); rules and the
# dashboard may use nothing else.
METRICS = {
    "kairan_queue_depth", "kairan_queue_pending", "kairan_queue_oldest_age_seconds",
    "kairan_in_flight", "kairan_retry_size", "kairan_dlq_size",
    "kairan_deliveries_total", "kairan_delivery_latency_seconds_bucket",
    "kairan_delivery_latency_seconds_sum", "kairan_delivery_latency_seconds_count",
    "kairan_breaker_state", "kairan_redis_reconnects_total",
    "kairan_token_refreshes_total", "kairan_token_refresh_failures_total",
    "kairan_up", "kairan_broadcasts_active",
}


def run(args, timeout=60, check=False, **kw):
    cp = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                        timeout=timeout, **kw)
    if check and cp.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(map(str, args)),
                             cp.returncode, cp.stdout[-3000:], cp.stderr[-3000:]))
    return cp


def have(tool):
    return shutil.which(tool) is not None


def changelog_version():
    with open(os.path.join(ROOT, "debian", "changelog")) as f:
        return re.match(r"kairan \(([^)]+)\)", f.readline()).group(1)


def read(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


VERSION = changelog_version()
SKIP_STATIC = "covered by the plain build's run (SANITIZE=1)"

# ====================================================================== deb

deb = None
droot = os.path.join(out, "root")


def build_deb():
    """Copy the tree (no build dirs, no .git) and dpkg-buildpackage it:
    never in the tree itself, whose build/ others are using."""
    src = os.path.join(out, "src", "kairan-%s" % VERSION)
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "build-san", "__pycache__", "test-out", "*.o", "*.d"))
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2",
               DEB_BUILD_PROFILES="nocheck")
    for v in ("MAKEFLAGS", "BUILD", "SANITIZE"):
        env.pop(v, None)
    t = time.monotonic()
    cp = run(["dpkg-buildpackage", "-us", "-uc", "-b"], timeout=600, cwd=src, env=env)
    log = os.path.join(out, "dpkg-buildpackage.log")
    with open(log, "w") as f:
        f.write(cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise AssertionError("dpkg-buildpackage exited %d (log: %s):\n%s"
                             % (cp.returncode, log, (cp.stdout + cp.stderr)[-3000:]))
    debs = glob.glob(os.path.join(out, "src", "kairan_%s_*.deb" % VERSION))
    assert len(debs) == 1, "expected one kairan .deb, found %r" % debs
    tap.diag("dpkg-buildpackage: %.1f s" % (time.monotonic() - t))
    return debs[0]


if SAN:
    tap.skip("the .deb builds with dpkg-buildpackage", SKIP_STATIC)
elif not (have("dpkg-buildpackage") and have("dh")):
    tap.skip("the .deb builds with dpkg-buildpackage",
             "debhelper / dpkg-dev not installed (apt-get install debhelper)")
else:
    with tap.check("the .deb builds with dpkg-buildpackage -us -uc -b"):
        deb = build_deb()
        run(["dpkg", "-x", deb, droot], check=True)

if deb:
    with tap.check("Build-Depends name the -dev package of every library the Makefile links"):
        ctl = read(os.path.join(ROOT, "debian", "control"))
        bd = re.search(r"^Build-Depends:(.*?)^\S", ctl, re.M | re.S).group(1)
        bdeps = {re.sub(r"[\s(<\[].*", "", x.strip()) for x in bd.split(",") if x.strip()}
        mk = read(os.path.join(ROOT, "Makefile"))
        pkgs = re.search(r"^PKGS\s*:=\s*(.*)$", mk, re.M).group(1).split()
        libs = re.findall(r"(?<![\w-])-l([\w+-]+)",
                          re.search(r"^LDLIBS\s*:=(.*)$", mk, re.M).group(1))
        missing = []
        for p in pkgs:
            d = run(["pkg-config", "--variable=pcfiledir", p], check=True).stdout.strip()
            owner = run(["dpkg", "-S", os.path.join(d, p + ".pc")]).stdout.split(":")[0]
            if owner not in bdeps:
                missing.append("%s (pkg-config %s)" % (owner or "?", p))
        for lib in libs:
            if lib in ("m", "pthread", "dl", "rt"):
                continue
            so = os.path.normpath(run(["cc", "-print-file-name=lib%s.so" % lib]).stdout.strip())
            owner = run(["dpkg", "-S", so]).stdout.split(":")[0]
            if owner not in bdeps:
                missing.append("%s (-l%s)" % (owner or "?", lib))
        assert not missing, "add to Build-Depends in debian/control: %s" % ", ".join(missing)

    with tap.check("the .deb depends on its shared libraries (shlibs) and adduser"):
        info = run(["dpkg-deb", "-f", deb, "Depends", "Recommends"], check=True).stdout
        for want in ("adduser", "libuv1", "libhiredis", "libjansson", "libcurl",
                     "libssl3", "libsystemd0", "libc6"):
            assert want in info, "%s missing from %s" % (want, info)
        assert "redis-server" in info, info

    with tap.check("binaries, units, manuals, completion, config and kit land where Debian expects"):
        want = {
            "usr/sbin/kairand": 0o755, "usr/bin/kairanctl": 0o755,
            "usr/sbin/kairan-backup": 0o755,
            "lib/systemd/system/kairand.service": 0o644,
            "lib/systemd/system/kairand@.service": 0o644,
            "lib/systemd/system/kairan-backup.service": 0o644,
            "lib/systemd/system/kairan-backup.timer": 0o644,
            "usr/share/man/man8/kairand.8.gz": 0o644,
            "usr/share/man/man1/kairanctl.1.gz": 0o644,
            "usr/share/man/man5/kairan.conf.5.gz": 0o644,
            "usr/share/man/man8/kairan-backup.8.gz": 0o644,
            "usr/share/bash-completion/completions/kairanctl": 0o644,
            "etc/kairan": 0o750,
            "etc/kairan/kairan.conf": 0o640,
            "etc/kairan/kairan.conf.example": 0o644,
            "etc/logrotate.d/kairan": 0o644,
            "usr/share/doc/kairan/runbook.md": 0o644,
            "usr/share/doc/kairan/copyright": 0o644,
            "usr/share/kairan/redis-kairan.conf": 0o644,
            "usr/share/kairan/prometheus/kairan-alerts.yml": 0o644,
            "usr/share/kairan/grafana/kairan-dashboard.json": 0o644,
        }
        bad = []
        for rel, m in want.items():
            p = os.path.join(droot, rel)
            if not os.path.exists(p):
                bad.append("missing " + rel)
            elif mode(p) != m:
                bad.append("%s is %o, want %o" % (rel, mode(p), m))
        assert not bad, "; ".join(bad)
        # Nothing under /usr/local or /var, no key file in the package.
        stray = [p for p in ("usr/local", "var", "etc/kairan/key")
                 if os.path.exists(os.path.join(droot, p))]
        assert not stray, "the package must not ship %r" % stray
        with open(os.path.join(droot, "usr/sbin/kairand"), "rb") as f:
            assert f.read(4) == b"\x7fELF"

    with tap.check("conffiles: /etc/kairan/kairan.conf (and the example, logrotate)"):
        run(["dpkg-deb", "-e", deb, os.path.join(out, "control")], check=True)
        conffiles = read(os.path.join(out, "control", "conffiles")).split()
        for c in ("/etc/kairan/kairan.conf", "/etc/kairan/kairan.conf.example",
                  "/etc/logrotate.d/kairan"):
            assert c in conffiles, conffiles

    with tap.check("the packaged kairan.conf has the service's paths and passes kairand --check"):
        conf = os.path.join(droot, "etc/kairan/kairan.conf")
        text = read(conf)
        assert re.search(r"^dir = /var/lib/kairan/outbox$", text, re.M), "outbox.dir"
        m = re.search(r"^audit_dir = (\S+)$", text, re.M)
        assert m and m.group(1).startswith("/var/log/kairan"), \
            "retention.audit_dir must be under the unit's LogsDirectory: %r" % (m and m.group(0))
        assert re.search(r"^key_file = /etc/kairan/key$", text, re.M)
        key = os.path.join(out, "pkgkey")
        run([os.path.join(droot, "usr/bin/kairanctl"), "keygen", key], check=True)
        cp = run([os.path.join(droot, "usr/sbin/kairand"), "-c", conf, "--check"],
                 env=dict(os.environ, KAIRAN_KEY_FILE=key), check=True)
        assert cp.stdout.strip().endswith(": ok"), cp.stdout

    with tap.check("kairand, kairanctl and kairan-backup report the debian/changelog version"):
        for b in ("usr/sbin/kairand", "usr/bin/kairanctl", "usr/sbin/kairan-backup"):
            v = run([os.path.join(droot, b), "--version"], check=True).stdout.split()
            assert v[-1] == VERSION, "%s --version: %r, changelog: %s" % (b, v, VERSION)

    with tap.check("the packaged runbook, Redis fragment and dashboard are the tree's"):
        for a, b in (("docs/runbook.md", "usr/share/doc/kairan/runbook.md"),
                     ("contrib/redis-kairan.conf", "usr/share/kairan/redis-kairan.conf"),
                     ("contrib/grafana/kairan-dashboard.json",
                      "usr/share/kairan/grafana/kairan-dashboard.json")):
            assert read(os.path.join(ROOT, a)) == read(os.path.join(droot, b)), b
elif not SAN:
    for n in ("Build-Depends", "Depends", "files", "conffiles", "kairan.conf",
              "versions", "kit"):
        tap.skip("package contents: " + n, "no .deb built")

# ====================================================================== postinst

STUBS = {
    # getent passwd kairan: known once adduser ran.
    "getent": 'echo "getent $*" >>"$LOG"; '
              '[ "$1" = passwd ] && [ "$2" = kairan ] && [ -e "$SANDBOX/user" ] && '
              'echo "kairan:x:999:999::/var/lib/kairan:/usr/sbin/nologin" && exit 0; exit 2',
    "adduser": 'echo "adduser $*" >>"$LOG"; touch "$SANDBOX/user"',
    "chown": 'echo "chown $*" >>"$LOG"',
    "dpkg-statoverride": 'echo "dpkg-statoverride $*" >>"$LOG"; exit 1',
    # A first installation: nothing was installed or enabled before.
    "deb-systemd-helper": 'echo "deb-systemd-helper $*" >>"$LOG"; '
                          'case "$*" in *debian-installed*) exit 1;; esac; exit 0',
    "deb-systemd-invoke": 'echo "deb-systemd-invoke $*" >>"$LOG"',
    "systemctl": 'echo "systemctl $*" >>"$LOG"',
    # install -d -m M -o U -g G dirs...: owners recorded, not applied.
    "install": 'echo "install $*" >>"$LOG"; a=; while [ $# -gt 0 ]; do '
               'case "$1" in -o|-g) shift 2;; *) a="$a $1"; shift;; esac; done; '
               'exec /usr/bin/install $a',
}


def run_postinst(sandbox, stubs, postinst, *args):
    env = dict(os.environ, PATH=stubs + ":" + os.environ["PATH"],
               LOG=os.path.join(sandbox, "log"), SANDBOX=sandbox)
    return run(["sh", "-e", postinst] + list(args), env=env)


if deb:
    with tap.check("postinst: user, /etc/kairan 0750 root:kairan, key 0600 by keygen, "
                   "state dirs, enabled not started; an upgrade keeps the key"):
        sb = os.path.join(out, "sandbox")
        stubs = os.path.join(sb, "bin")
        os.makedirs(stubs)
        for name, body in STUBS.items():
            with open(os.path.join(stubs, name), "w") as f:
                f.write("#!/bin/sh\n" + body + "\n")
            os.chmod(os.path.join(stubs, name), 0o755)
        os.symlink(os.path.join(droot, "usr/bin/kairanctl"), os.path.join(stubs, "kairanctl"))
        etc = os.path.join(sb, "etc/kairan")
        os.makedirs(etc)
        os.chmod(etc, 0o755)
        shutil.copy(os.path.join(droot, "etc/kairan/kairan.conf"), etc)
        os.chmod(os.path.join(etc, "kairan.conf"), 0o644)
        text = read(os.path.join(out, "control", "postinst"))
        assert "#DEBHELPER#" not in text, "debhelper snippets not merged"
        for needle in ("adduser", "--system", "kairanctl keygen", "chmod 0600",
                       "/var/lib/kairan", "deb-systemd-helper enable 'kairand.service'"):
            assert needle in text, "postinst lacks %r" % needle
        assert not re.search(r"deb-systemd-invoke\s+(\$_dh_action|start)", text), \
            "postinst must not start kairand"
        for p in ("/etc/kairan", "/var/lib/kairan", "/var/log/kairan"):
            text = text.replace(p, sb + p)
        pi = os.path.join(sb, "postinst")
        with open(pi, "w") as f:
            f.write(text)
        cp = run_postinst(sb, stubs, pi, "configure", "")
        assert cp.returncode == 0, "postinst configure failed: %s%s" % (cp.stdout, cp.stderr)
        log = read(os.path.join(sb, "log"))
        assert re.search(r"^adduser .*--system .*--group .*--home /var/lib/kairan.* kairan$",
                         log.replace(sb, ""), re.M), log
        assert "chown root:kairan %s/etc/kairan\n" % sb in log, log
        assert "chown root:kairan %s/etc/kairan/kairan.conf\n" % sb in log, log
        assert "chown kairan:kairan %s/etc/kairan/key.new\n" % sb in log, log
        assert mode(etc) == 0o750, oct(mode(etc))
        assert mode(os.path.join(etc, "kairan.conf")) == 0o640
        key = os.path.join(etc, "key")
        assert mode(key) == 0o600, oct(mode(key))
        assert not os.path.exists(key + ".new")
        cp = run([os.path.join(droot, "usr/sbin/kairand"), "-c", os.path.join(etc, "kairan.conf"),
                  "--check"], env=dict(os.environ, KAIRAN_KEY_FILE=key))
        assert cp.returncode == 0, "the generated key does not load: %s" % cp.stderr
        for d in ("var/lib/kairan", "var/lib/kairan/outbox", "var/log/kairan"):
            assert mode(os.path.join(sb, d)) == 0o750, d
        assert re.search(r"^install -d -m 0750 -o kairan -g kairan .*/var/lib/kairan ", log, re.M), log
        assert "deb-systemd-helper enable kairand.service" in log, log
        assert not re.search(r"deb-systemd-invoke (start|restart)", log), log
        assert "enable kairan-backup.timer" not in log, "the backup timer must not be enabled"

        with open(key, "rb") as f:
            key_before = f.read()
        os.remove(os.path.join(sb, "log"))
        cp = run_postinst(sb, stubs, pi, "configure", "0.0.9")
        assert cp.returncode == 0, cp.stderr
        with open(key, "rb") as f:
            assert f.read() == key_before, "an upgrade replaced the key file"
        assert "adduser" not in read(os.path.join(sb, "log")), "adduser ran again on upgrade"
elif not SAN:
    tap.skip("postinst in a sandbox", "no .deb built")

# ====================================================================== systemd

UNITS = ["kairand.service", "kairand@.service", "kairan-backup.service",
         "kairan-backup.timer"]


def unit_settings(path):
    """{key: [values]} of a unit file (all sections)."""
    d = {}
    for line in read(path).splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            d.setdefault(m.group(1), []).append(m.group(2))
    return d


with tap.check("kairand.service: Type=notify, paths, reload, restart, watchdog, hardening"):
    s = unit_settings(os.path.join(ROOT, "systemd", "kairand.service"))
    want = {
        "Type": "notify", "ExecStart": "/usr/sbin/kairand -c /etc/kairan/kairan.conf",
        "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
        "WatchdogSec": "30", "User": "kairan", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "CapabilityBoundingSet": "", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    bad = ["%s=%r (want %r)" % (k, s.get(k), v) for k, v in want.items()
           if v not in s.get(k, [])]
    assert not bad, "; ".join(bad)
    rw = " ".join(s.get("ReadWritePaths", [])).split()
    assert "/var/lib/kairan" in rw and "/var/log/kairan" in rw, rw
    assert "@system-service" in s.get("SystemCallFilter", []), s.get("SystemCallFilter")
    t = unit_settings(os.path.join(ROOT, "systemd", "kairand@.service"))
    assert "/usr/sbin/kairand -c /etc/kairan/%i.conf" in t["ExecStart"], t["ExecStart"]
    # The template differs from the main unit only where it must.
    same = {k: v for k, v in s.items() if k not in ("ExecStart", "ExecStartPre",
                                                    "Description", "EnvironmentFile")}
    assert all(t.get(k) == v for k, v in same.items()), \
        [k for k, v in same.items() if t.get(k) != v]

if SAN:
    tap.skip("systemd-analyze verify", SKIP_STATIC)
    tap.skip("systemd-analyze security", SKIP_STATIC)
elif not have("systemd-analyze"):
    tap.skip("systemd-analyze verify", "systemd not installed (apt-get install systemd)")
    tap.skip("systemd-analyze security", "systemd not installed (apt-get install systemd)")
else:
    # The units point at an installed kairand: the package's (dpkg -x) or,
    # without one, this build's; man pages from the package or man/.
    uv = os.path.join(out, "units")
    os.makedirs(uv)
    if deb:
        sbin, manpath = os.path.join(droot, "usr/sbin"), os.path.join(droot, "usr/share/man")
    else:
        sbin = os.path.join(out, "sbin")
        os.makedirs(sbin)
        os.symlink(os.path.abspath(KAIRAND), os.path.join(sbin, "kairand"))
        os.symlink(BACKUP, os.path.join(sbin, "kairan-backup"))
        manpath = os.path.join(out, "man")
        for sec in "158":
            os.makedirs(os.path.join(manpath, "man" + sec))
        for p in glob.glob(os.path.join(ROOT, "man", "*.[158]")):
            shutil.copy(p, os.path.join(manpath, "man" + p[-1]))
    for u in UNITS:
        with open(os.path.join(uv, u), "w") as f:
            f.write(read(os.path.join(ROOT, "systemd", u)).replace("/usr/sbin/", sbin + "/"))
    with tap.check("systemd-analyze verify: every unit, an instance of the template, no warning"):
        cp = run(["systemd-analyze", "verify"] + ["./" + u for u in UNITS] +
                 ["./kairand@east.service"], cwd=uv, env=dict(os.environ, MANPATH=manpath))
        text = (cp.stdout + cp.stderr).strip()
        assert cp.returncode == 0 and text == "", "rc %d:\n%s" % (cp.returncode, text)
    with tap.check("systemd-analyze security: kairand.service exposure below 2.0"):
        cp = run(["systemd-analyze", "security", "--offline=yes", "./kairand.service"],
                 cwd=uv, env=dict(os.environ, MANPATH=manpath))
        m = re.search(r"Overall exposure level for kairand.service: ([0-9.]+)",
                      cp.stdout + cp.stderr)
        assert m, cp.stdout[-2000:] + cp.stderr[-2000:]
        tap.diag("exposure: %s" % m.group(1))
        assert float(m.group(1)) < 2.0, m.group(0)

# ====================================================================== man

PAGES = ["kairand.8", "kairanctl.1", "kairan.conf.5", "kairan-backup.8"]
if SAN:
    tap.skip("mandoc -Tlint", SKIP_STATIC)
elif not have("mandoc"):
    tap.skip("mandoc -Tlint", "mandoc not installed (apt-get install mandoc)")
else:
    with tap.check("mandoc -Tlint -W warning: no warning in any page"):
        bad = []
        for p in PAGES:
            cp = run(["mandoc", "-Tlint", "-W", "warning", os.path.join(ROOT, "man", p)])
            if cp.returncode != 0 or cp.stdout.strip() or cp.stderr.strip():
                bad.append("%s: %s%s" % (p, cp.stdout, cp.stderr))
        assert not bad, "\n".join(bad)
if SAN:
    tap.skip("man --warnings", SKIP_STATIC)
elif not have("man"):
    tap.skip("man --warnings", "man-db not installed (apt-get install man-db)")
else:
    with tap.check("man --warnings -l: every page renders without a warning"):
        bad = []
        for p in PAGES:
            cp = run(["man", "--warnings", "-l", os.path.join(ROOT, "man", p)],
                     env=dict(os.environ, MANWIDTH="80"))
            if cp.returncode != 0 or cp.stderr.strip() or "KAIRAN" not in cp.stdout.upper():
                bad.append("%s: rc %d %s" % (p, cp.returncode, cp.stderr))
        assert not bad, "\n".join(bad)


def man_text(page):
    return read(os.path.join(ROOT, "man", page))


with tap.check("kairand(8): options of --help, signals, exit codes 0/1/2, files"):
    t = man_text("kairand.8")
    helptext = run([KAIRAND, "--help"], check=True).stdout
    for opt in re.findall(r"(?<![\w-])(-[a-zA-Z]|--[a-z-]+)", helptext):
        flag = opt.lstrip("-")
        assert re.search(r"\bFl (\\-)?%s\b" % re.escape(flag), t), \
            "option %s not in kairand.8" % opt
    for needle in ("SIGHUP", "SIGTERM", ".Sh EXIT STATUS", ".It 0", ".It 1", ".It 2",
                   "/etc/kairan/kairan.conf", "/etc/kairan/key", "kairand@.service",
                   "READY=1", "WATCHDOG"):
        assert needle in t, "kairand.8 lacks %r" % needle
    # A reload reopens the log file only; the rest needs a restart.
    sig = t[t.index(".It Dv SIGHUP"):]
    assert "log file" in sig[:400] and "restart" in sig[:900], sig[:900]

with tap.check("kairanctl(1): every built-in command and exit codes 0-3"):
    t = man_text("kairanctl.1")
    for cmd in ("submit", "status", "watch", "cancel", "dlq list", "dlq retry", "keygen"):
        assert re.search(r"\.It Cm %s\b" % re.escape(cmd), t), \
            "kairanctl.1 does not document %r" % cmd
    for opt in ("--json", "--all"):
        assert "Fl \\-" + opt[2:] in t, opt
    for code in "0123":
        assert ".It %s\n" % code in t, "exit code %s" % code
    helptext = run([KAIRANCTL, "--help"], check=True).stdout
    cmds = {ln.split()[0] for ln in helptext.splitlines() if re.match(r"^  [a-z]", ln)}
    undocumented = sorted(c for c in cmds if not re.search(r"\.It Cm %s\b" % c, t))
    if undocumented:
        tap.diag("kairanctl commands from other cli/*.c files not yet in kairanctl.1: %s"
                 % ", ".join(undocumented))

with tap.check("kairan.conf(5): every key of config/kairan.conf.example, in its section"):
    t = man_text("kairan.conf.5")
    sections = {}
    sec = None
    for line in read(os.path.join(ROOT, "config", "kairan.conf.example")).splitlines():
        m = re.match(r"^\[([a-z]+)\]$", line)
        if m:
            sec = m.group(1)
            continue
        m = re.match(r"^#? ?([a-z][a-z_]*) = \S", line)
        if m and sec:
            sections.setdefault(sec, set()).add(m.group(1))
    assert len(sections) >= 14 and sum(map(len, sections.values())) > 80, sections
    missing = []
    for sec, keys in sections.items():
        m = re.search(r"^\.Sh %s\n(.*?)(?=^\.Sh )" % sec.upper(), t, re.M | re.S)
        if not m:
            missing.append("section " + sec)
            continue
        for k in keys:
            if not re.search(r"\.It .*Cm %s\b" % re.escape(k), m.group(1)):
                missing.append("%s.%s" % (sec, k))
    assert not missing, "not in kairan.conf.5: " + ", ".join(sorted(missing))

# ====================================================================== help

with tap.check("--help and --version of every command; a bad option exits 2"):
    for prog, name in ((KAIRAND, "kairand"), (KAIRANCTL, "kairanctl"),
                       (BACKUP, "kairan-backup")):
        h = run([prog, "--help"])
        assert h.returncode == 0 and "usage:" in h.stdout and "exit:" in h.stdout, (prog, h)
        for v in ("--version", "-V"):
            cp = run([prog, v])
            assert cp.returncode == 0 and cp.stdout.strip() == "%s %s" % (name, VERSION), \
                "%s %s: %r (changelog: %s)" % (prog, v, cp.stdout, VERSION)
        cp = run([prog, "--no-such-option"])
        assert cp.returncode == 2, "%s --no-such-option exited %d" % (prog, cp.returncode)

with tap.check("kairanctl CMD --help: the help, exit 0, no config read, no file made"):
    # "keygen --help" made a key file named --help (README review).
    d = tempfile.mkdtemp(prefix="kn-help-")
    try:
        for argv in (["keygen", "--help"], ["keygen", "-h"], ["recipients", "--help"],
                     ["recipients", "import", "--help"], ["staff", "add", "--help"],
                     ["-c", os.path.join(d, "none.conf"), "token", "create", "--help"],
                     ["key", "add", "--help"], ["submit", "-h"]):
            cp = subprocess.run([os.path.abspath(KAIRANCTL)] + argv, cwd=d,
                                capture_output=True, text=True, timeout=30)
            assert cp.returncode == 0 and "usage:" in cp.stdout, (argv, cp)
        assert os.listdir(d) == [], os.listdir(d)
        assert "[--email ADDR]" in cp.stdout, "staff add --email not in --help"
    finally:
        shutil.rmtree(d)

# ====================================================================== bash

with tap.check("bash completion: commands, dlq subcommands, --json, options"):
    script = r'''
[ -f /usr/share/bash-completion/bash_completion ] && . /usr/share/bash-completion/bash_completion
. "$1"
PATH="$2:$PATH"
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
      COMPREPLY=(); _kairanctl kairanctl "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
      echo "${COMPREPLY[*]}"; }
t kairanctl ""
t kairanctl -c /etc/kairan/kairan.conf s
t kairanctl dlq ""
t kairanctl dlq retry --
t kairanctl status --
t kairanctl --v
complete -p kairanctl
'''
    cp = run(["bash", "-c", script, "x", os.path.join(ROOT, "contrib", "kairanctl.bash-completion"),
              os.path.abspath(BUILD)], check=True)
    lines = cp.stdout.splitlines()
    assert {"submit", "status", "watch", "cancel", "dlq", "keygen"} <= set(lines[0].split()), lines[0]
    assert {"status", "submit"} <= set(lines[1].split()) and \
        all(w.startswith("s") for w in lines[1].split()), lines[1]
    assert lines[2].split() == ["list", "retry"], lines[2]
    assert lines[3] == "--all" and lines[4] == "--json" and lines[5] == "--version", lines
    assert "-F _kairanctl kairanctl" in lines[6], lines[6]

# ====================================================================== prometheus

RULES = os.path.join(ROOT, "contrib", "prometheus", "kairan-alerts.yml")
DASH = os.path.join(ROOT, "contrib", "grafana", "kairan-dashboard.json")
dashboard = None
exprs = {}
with tap.check("Grafana dashboard: valid JSON with queue depth, deliveries by result, "
               "p50/p90/p99, breaker panels"):
    dashboard = json.loads(read(DASH))
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"] and all(t.get("expr") for t in p["targets"]), p["title"]
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels}

    def panel(pred, what):
        hits = [k for k, v in exprs.items() if pred(v)]
        assert hits, "no panel for " + what
        return hits[0]
    qd = panel(lambda e: "kairan_queue_depth" in e, "queue depth")
    legends = [t.get("legendFormat", "") for p in panels if p["title"] == qd for t in p["targets"]]
    assert any("{{channel}}" in lg and "{{priority}}" in lg for lg in legends), legends
    panel(lambda e: re.search(r"sum by \(result\) \(rate\(kairan_deliveries_total", e),
          "deliveries/s by result")
    lat = panel(lambda e: "kairan_delivery_latency_seconds_bucket" in e, "latency")
    for q in ("0.5", "0.9", "0.99"):
        assert "histogram_quantile(%s," % q in exprs[lat], q
    br = [p for p in panels if "kairan_breaker_state" in exprs[p["title"]]]
    assert br, "no breaker panel"
    texts = json.dumps(br[0]["fieldConfig"])
    assert all(w in texts for w in ('"closed"', '"half-open"', '"open"')), texts
    assert any(v["name"] == "datasource" for v in dashboard["templating"]["list"])

with tap.check("rules and dashboard use only metrics kairand exposes"):
    assert exprs, "no dashboard expressions"
    used = set(re.findall(r"\bkairan_[a-z_]+\b", read(RULES))) | \
        set(re.findall(r"\bkairan_[a-z_]+\b", " ".join(exprs.values())))
    unknown = used - METRICS
    assert not unknown, "unknown metric names: %s" % sorted(unknown)
    for m in ("kairan_queue_depth", "kairan_queue_oldest_age_seconds", "kairan_breaker_state",
              "kairan_dlq_size", "kairan_deliveries_total", "kairan_token_refresh_failures_total"):
        assert m in read(RULES), m

with tap.check("runbook: every section the issue asks for; alert runbook anchors exist"):
    rb = read(os.path.join(ROOT, "docs", "runbook.md"))

    def slug(h):
        return re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
    slugs = {slug(h) for h in re.findall(r"^##+ (.*)$", rb, re.M)}
    for want in ("the-relay-is-down", "redis-is-down", "line-quota-is-used-up-or-line-refuses",
                 "a-key-must-be-rotated", "the-dlq-is-filling",
                 "re-sending-a-broadcasts-failures", "taking-a-backup-and-restoring-it"):
        assert want in slugs, "runbook lacks a section %r (has %r)" % (want, sorted(slugs))
    for a in re.findall(r'runbook: "runbook\.md#([^"]+)"', read(RULES)):
        assert a in slugs, "alert runbook anchor #%s has no section" % a
    for needle in ("kairanctl dlq list", "kairanctl dlq retry", "kairanctl key add",
                   "failover.mode", "api_key_file", "kairan-backup --restore", "--apply"):
        assert needle in rb, needle

if SAN:
    for n in ("promtool check rules", "promtool test rules", "dashboard PromQL parses"):
        tap.skip(n, SKIP_STATIC)
elif not have("promtool"):
    for n in ("promtool check rules", "promtool test rules", "dashboard PromQL parses"):
        tap.skip(n, "promtool not installed (Debian package prometheus)")
else:
    with tap.check("promtool check rules: the alert rules are valid"):
        cp = run(["promtool", "check", "rules", RULES])
        assert cp.returncode == 0 and "SUCCESS" in cp.stdout, cp.stdout + cp.stderr
        n = int(re.search(r"SUCCESS: (\d+) rules", cp.stdout).group(1))
        assert n >= 6, n
    with tap.check("promtool test rules: each alert fires on its case and only there"):
        cp = run(["promtool", "test", "rules", "kairan-alerts.test.yml"],
                 cwd=os.path.dirname(RULES))
        assert cp.returncode == 0 and "SUCCESS" in cp.stdout, cp.stdout + cp.stderr
        names = set(re.findall(r"alert: (\w+)", read(RULES)))
        tested = set(re.findall(r"alertname: (\w+)", read(RULES.replace(".yml", ".test.yml"))))
        assert names <= tested, "alerts without a test: %s" % sorted(names - tested)
        for n in ("KairanQueueDepthHigh", "KairanUrgentJobTooOld", "KairanBreakerOpen",
                  "KairanDLQGrowing", "KairanNoDeliveries", "KairanTokenRefreshFailing"):
            assert n in names, n
    with tap.check("dashboard PromQL parses (as recording rules, promtool)"):
        assert dashboard, "no dashboard"
        rules = os.path.join(out, "dashboard-rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, e in enumerate(t["expr"] for p in dashboard["panels"]
                                  for t in p.get("targets", [])):
                f.write("      - record: dashboard:expr%d\n        expr: %s\n"
                        % (i, json.dumps(e.replace("$__rate_interval", "5m"))))
        cp = run(["promtool", "check", "rules", rules])
        assert cp.returncode == 0, cp.stdout + cp.stderr

# ====================================================================== redis

FRAGMENT = os.path.join(ROOT, "contrib", "redis-kairan.conf")
CONTAINERS = {"config", "xgroup", "xinfo", "client", "script", "acl", "object", "memory",
              "cluster", "command", "function", "debug", "pubsub", "latency", "module",
              "slowlog"}


def source_commands(cmdset):
    """Redis commands named in kairan's sources: Lua redis.call('X') (in
    queue/lua/, or in C), and C
    string literals (adjacent ones joined) that start with a command name
    followed by nothing, an argument format or a subcommand; literals in
    printf, log, JSON or string-comparison calls are text, not commands."""
    found = {}
    lua = re.compile(r"""p?call\(\s*['"]([A-Za-z]+)['"]""")
    lit = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
    text_call = re.compile(r"\b(\w*printf|kn_log\w*|json_\w+|\w*str\w*cmp|\w*puts)\s*\(")
    for d in ("adapters", "cli", "dispatcher", "queue", "common", "model"):
        for p in (glob.glob(os.path.join(ROOT, d, "**", "*.[ch]"), recursive=True) +
                  glob.glob(os.path.join(ROOT, d, "**", "*.lua"), recursive=True)):
            src = re.sub(r'"\s*\n\s*"', "", read(p))
            rel = os.path.relpath(p, ROOT)
            for m in lua.finditer(src):
                found.setdefault(m.group(1).lower(), set()).add(rel)
            for m in lit.finditer(src):
                s = m.group(1)
                mm = re.match(r"([A-Z]+)(?: ([A-Z]+))?", s)
                if not mm or mm.group(1).lower() not in cmdset:
                    continue
                rest = s[len(mm.group(1)):]
                if rest and not re.match(r" (%|[A-Z]|$)", rest):
                    continue
                stmt = re.split(r"[;{}]", src[max(0, m.start() - 400):m.start()])[-1]
                if text_call.search(stmt):
                    continue
                w = mm.group(1).lower()
                if w in CONTAINERS:
                    if not mm.group(2):
                        continue
                    w += "|" + mm.group(2).lower()
                found.setdefault(w, set()).add(rel)
    found.pop("auth", None)     # always allowed
    return found


def dryrun_args(cmd, info):
    special = {
        "eval": ["eval", "return 1", "1", "kairan:t"],
        "evalsha": ["evalsha", "0" * 40, "1", "kairan:t"],
        "xreadgroup": ["xreadgroup", "GROUP", "g", "c", "STREAMS", "kairan:t", ">"],
        "select": ["select", "0"],
        "xgroup|create": ["xgroup", "create", "kairan:t", "g", "$"],
        "xgroup|delconsumer": ["xgroup", "delconsumer", "kairan:t", "g", "c"],
        "xinfo|consumers": ["xinfo", "consumers", "kairan:t", "g"],
        "config|get": ["config", "get", "maxmemory-policy"],
    }
    if cmd in special:
        return special[cmd]
    words = cmd.split("|")
    return words + ["kairan:t"] * max(0, abs(int(info[1])) - len(words))


class AclRedis:
    """A redis-server started with the fragment included (passwords set);
    .call() runs as admin, like an operator.  Kairan() uses .url/.call."""

    def __init__(self, out_dir, fragment_text, pw):
        self.port = free_port()
        self.pw = pw
        self.dir = os.path.join(out_dir, "redis-acl-%d" % self.port)
        os.makedirs(self.dir)
        frag = os.path.join(self.dir, "kairan.conf")
        with open(frag, "w") as f:
            f.write(fragment_text)
        self.conf = os.path.join(self.dir, "redis.conf")
        with open(self.conf, "w") as f:
            f.write("include %s\nport %d\nbind 127.0.0.1\ndir %s\ndaemonize no\n"
                    % (frag, self.port, self.dir))
        self.url = "redis://:%s@127.0.0.1:%d/0" % (pw, self.port)
        self.proc = Proc(["redis-server", self.conf], out_dir, name="redis-acl-%d" % self.port)
        self._c = None

        def up():
            if not self.proc.alive():
                raise AssertionError("redis-server exited: %s" % self.proc.stdout_text()[-1500:])
            try:
                with self.client("admin") as c:
                    return c.call("PING") == "PONG"
            except (OSError, RedisError):
                return False
        wait_for(up, 15, what="redis-server with the fragment")

    def client(self, user):
        c = RespClient("127.0.0.1", self.port)
        c.call("AUTH", user, self.pw)
        return c

    def call(self, *args):
        if self._c is None:
            self._c = self.client("admin")
        return self._c.call(*args)

    def stop(self):
        if self._c:
            self._c.close()
        self.proc.stop()


PW = "s3cret-for-tests"
HASH = hashlib.sha256(PW.encode()).hexdigest()
frag_text = read(FRAGMENT)
acl = None
with tap.check("the Redis fragment loads: AOF on with everysec, noeviction, users"):
    assert len(re.findall(r"#CHANGE-ME-[a-z0-9-]+", frag_text)) == 3
    acl = AclRedis(out, re.sub(r"#CHANGE-ME-[a-z0-9-]+", "#" + HASH, frag_text), PW)
    cfg = {}
    for k in ("appendonly", "appendfsync", "maxmemory-policy", "aof-use-rdb-preamble"):
        cfg[k] = acl.call("CONFIG", "GET", k)[1].decode()
    assert cfg == {"appendonly": "yes", "appendfsync": "everysec",
                   "maxmemory-policy": "noeviction", "aof-use-rdb-preamble": "yes"}, cfg
    users = sorted(u.decode() for u in acl.call("ACL", "USERS"))
    assert users == ["admin", "default", "kairan-backup"], users
    # Without the password nothing works.
    with RespClient("127.0.0.1", acl.port) as c:
        try:
            c.call("GET", "kairan:x")
            raise AssertionError("no password needed")
        except RedisError as e:
            assert "NOAUTH" in str(e), e

with tap.check("a placeholder password hash left in: Redis refuses to start"):
    d = os.path.join(out, "redis-placeholder")
    os.makedirs(d)
    with open(os.path.join(d, "kairan.conf"), "w") as f:
        f.write(frag_text)
    with open(os.path.join(d, "redis.conf"), "w") as f:
        f.write("include %s/kairan.conf\nport %d\nbind 127.0.0.1\ndir %s\n" % (d, free_port(), d))
    cp = run(["redis-server", os.path.join(d, "redis.conf")], timeout=20)
    assert cp.returncode != 0 and "password hash" in (cp.stdout + cp.stderr), cp.stdout[-800:]

if acl:
    with tap.check("every Redis command in kairan's sources is allowed to kairan's user; "
                   "dangerous ones are not"):
        allcmds = {c.decode() for c in acl.call("COMMAND", "LIST")}
        found = source_commands(allcmds)
        # SUBSCRIBE goes only to the sentinels (queue/sentinel.c's
        # +switch-master watchers through kn_redis_subscribe), never to a
        # data node: kairan's user there needs no channel.
        found.pop("subscribe", None)
        for c in ("xreadgroup", "evalsha", "xautoclaim", "config|get", "hincrby",
                  "lset"):  # lset: only in queue/lua/rekey_aud.lua
            assert c in found, "the source scan missed %s (scanner broken?)" % c
        tap.diag("commands in the sources: %s" % " ".join(sorted(found)))
        refused = []
        with acl.client("admin") as c:
            for cmd in sorted(found):
                info = c.call("COMMAND", "INFO", cmd)[0]
                r = c.call("ACL", "DRYRUN", "default", *dryrun_args(cmd, info))
                if r != "OK":
                    refused.append("%s (%s; used in %s)" % (
                        cmd, r.decode() if isinstance(r, bytes) else r,
                        ", ".join(sorted(found[cmd]))))
            assert not refused, "add to the default user in contrib/redis-kairan.conf: " + \
                "; ".join(refused)
            for args in (["flushall"], ["flushdb"], ["config", "set", "maxmemory", "1"],
                         ["keys", "*"], ["get", "other:x"], ["shutdown"],
                         ["debug", "sleep", "0"], ["acl", "setuser", "x"],
                         ["script", "flush"], ["monitor"], ["hset", "other:h", "f", "v"]):
                assert c.call("ACL", "DRYRUN", "default", *args) != "OK", \
                    "kairan's user may run %r" % args
            for args in (["bgsave"], ["lastsave"], ["info", "persistence"],
                         ["config", "get", "dir"], ["dbsize"]):
                assert c.call("ACL", "DRYRUN", "kairan-backup", *args) == "OK", args
            for args in (["get", "kairan:x"], ["config", "set", "dir", "/tmp"], ["flushall"]):
                assert c.call("ACL", "DRYRUN", "kairan-backup", *args) != "OK", args

    k = None
    with tap.check("kairanctl and kairand deliver a broadcast through kairan's restricted user"):
        k = Kairan(out, acl, email="outbox", name="kairan-acl",
                   conf={"redis": {"url": acl.url}, "http": {"listen": ""}})
        d = k.start()
        n = 20
        bid = k.submit({"tenant": "sakura-hs", "category": "emergency", "priority": "urgent",
                        "subject": "【緊急】臨時休校", "body": "明日は休校です。\n",
                        "channels": ["email"],
                        "recipients": [{"id": "r-%d" % i, "email": "g%02d@example.jp" % i}
                                       for i in range(n)]})
        h = k.wait_done(bid, 30)
        counts = k.counts(bid)
        assert counts.get("email", {}).get("delivered") == n, (h, counts)
        assert "NOPERM" not in d.stderr_text(), d.stderr_text()[-2000:]
        st = k.ctl("status", "--json")
        assert st.returncode == 0, st.stderr
        assert d.stop() == 0, d.stderr_text()[-1500:]

    with tap.check("kairan-backup runs as the kairan-backup user"):
        assert k, "no kairan installation"
        bdir = os.path.join(out, "backups-acl")
        cp = run([BACKUP, "--redis-cli-args", "--user kairan-backup -p %d" % acl.port,
                  "--dir", bdir, "--key", k.key_file],
                 env=dict(os.environ, REDISCLI_AUTH=PW), timeout=60)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        gens = [g for g in os.listdir(bdir) if not g.startswith(".")]
        assert len(gens) == 1 and os.path.exists(os.path.join(bdir, gens[0], "appendonlydir")), gens
    acl.stop()

# ====================================================================== backup


def snapshot(call):
    """{key: (type, value)} of every key, orders that Redis does not keep
    (sets, hashes) normalized; call(*args) runs one command."""
    snap = {}
    for key in sorted(call("KEYS", "*")):
        t = call("TYPE", key)
        if t == "string":
            v = call("GET", key)
        elif t == "hash":
            h = call("HGETALL", key)
            v = sorted(zip(h[::2], h[1::2]))
        elif t == "list":
            v = call("LRANGE", key, 0, -1)
        elif t == "set":
            v = sorted(call("SMEMBERS", key))
        elif t == "zset":
            v = call("ZRANGE", key, 0, -1, "WITHSCORES")
        elif t == "stream":
            v = call("XRANGE", key, "-", "+")
        else:
            raise AssertionError("unexpected type %r of %r" % (t, key))
        snap[key] = (t, v)
    return snap


def redis_up(port):
    try:
        with RespClient("127.0.0.1", port, timeout=1) as c:
            return c.call("PING") == "PONG"
    except (OSError, RedisError):
        return False


src = None
bdir = os.path.join(out, "backups")
gens = []
keyfile = os.path.join(out, "etc-kairan", "key")
with tap.check("3 backups with --keep 2 leave the 2 newest generations, each complete"):
    src = Redis(out, appendonly=True)
    src.call("SET", "kairan:s", "値")
    src.call("HSET", "kairan:bc:b-1", "status", "sending", "jobs", "3")
    src.call("RPUSH", "kairan:bc:b-1:aud", "a", "b", "c")
    src.call("SADD", "kairan:grp:t:2-A", "r-1", "r-2")
    src.call("ZADD", "kairan:retry", "1", "j1", "2", "j2")
    src.call("XADD", "kairan:q:email:urgent", "*", "j", "{}")
    src.call("SET", "kairan:ttl", "x", "EX", "86400")
    os.makedirs(os.path.dirname(keyfile))
    run([KAIRANCTL, "keygen", keyfile], check=True)
    saved = []
    for i in range(3):
        cp = run([BACKUP, "--redis-cli-args", "-p %d" % src.port, "--dir", bdir,
                  "--keep", "2", "--key", keyfile], timeout=60)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        saved.append(re.search(r"saved: (\S+)", cp.stdout).group(1))
        src.call("SET", "kairan:after-%d" % i, str(i))
    gens = sorted(g for g in os.listdir(bdir) if not g.startswith("."))
    assert [os.path.join(bdir, g) for g in gens] == saved[1:], (gens, saved)
    assert mode(bdir) == 0o700
    for g in gens:
        p = os.path.join(bdir, g)
        assert mode(p) == 0o700, oct(mode(p))
        for f in ("dump.rdb", "key", "SHA256SUMS", "INFO"):
            assert os.path.isfile(os.path.join(p, f)), (g, f)
        assert mode(os.path.join(p, "key")) == 0o600
        assert read(os.path.join(p, "key")) == read(keyfile)
        assert glob.glob(os.path.join(p, "appendonlydir", "*.manifest")), "no AOF copy"
        run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=p, check=True)
    # Each generation holds what was there at its time: 7 + 1 and 7 + 2 keys.
    sizes = [int(re.search(r"^dbsize=(\d+)", read(os.path.join(bdir, g, "INFO")), re.M).group(1))
             for g in gens]
    assert sizes == [8, 9], sizes
    lst = run([BACKUP, "--list", "--dir", bdir], check=True).stdout.splitlines()
    assert [ln.split()[0] for ln in lst if ln] == gens, lst

newdir = os.path.join(out, "restored")
with tap.check("restore of the newest generation into a new redis-server gives the same keys"):
    src.call("DEL", "kairan:after-2")     # the state of the newest backup
    want = snapshot(src.call)
    assert len(want) == 9
    os.makedirs(newdir)
    newkey = os.path.join(out, "restored-key")
    nobody = free_port()
    dry = run([BACKUP, "--dir", bdir, "--restore", "latest", "--redis-dir", newdir,
               "--redis-cli-args", "-p %d" % nobody], check=True).stdout
    assert "SHA256SUMS ok" in dry and "appendonly no" in dry and not os.listdir(newdir), dry
    cp = run([BACKUP, "--dir", bdir, "--restore", "latest", "--redis-dir", newdir,
              "--key-dest", newkey, "--redis-cli-args", "-p %d" % nobody, "--apply"])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert mode(newkey) == 0o600 and read(newkey) == read(keyfile)
    port = free_port()
    dst = Proc(["redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", newdir,
                "--appendonly", "no", "--save", ""], out, name="redis-restored")
    wait_for(lambda: redis_up(port), 15, what="restored redis-server")
    with RespClient("127.0.0.1", port) as c:
        got = snapshot(c.call)
        assert got == want, "restored keys differ: %s" % sorted(
            key for key in set(got) | set(want) if got.get(key) != want.get(key))
        assert 0 < c.call("TTL", "kairan:ttl") <= 86400
        # AOF on again, as the restore steps say, then a restart with AOF.
        c.call("CONFIG", "SET", "appendonly", "yes")

        def rewritten():
            info = c.call("INFO", "persistence").decode()
            return all(x in info for x in ("aof_rewrite_in_progress:0", "aof_rewrite_scheduled:0",
                                           "aof_enabled:1", "aof_last_bgrewrite_status:ok"))
        wait_for(rewritten, 30, 0.1, what="AOF rewrite after restore")
    dst.stop()
    dst = Proc(["redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", newdir,
                "--appendonly", "yes", "--save", ""], out, name="redis-restored-aof")
    wait_for(lambda: redis_up(port), 15, what="restored redis-server with AOF")
    with RespClient("127.0.0.1", port) as c:
        assert snapshot(c.call) == want, "keys after the AOF restart differ"
    dst.stop()

with tap.check("restore refuses a damaged generation and a running Redis; bad arguments"):
    bad = os.path.join(out, "damaged")
    shutil.copytree(os.path.join(bdir, gens[-1]), bad)
    with open(os.path.join(bad, "dump.rdb"), "r+b") as f:
        f.seek(20)
        b = f.read(1)
        f.seek(20)
        f.write(bytes([b[0] ^ 0xFF]))
    cp = run([BACKUP, "--restore", bad, "--redis-cli-args", "-p %d" % free_port()])
    assert cp.returncode == 1 and "checksums do not match" in cp.stderr, cp.stderr
    cp = run([BACKUP, "--dir", bdir, "--restore", "latest", "--redis-dir", newdir,
              "--redis-cli-args", "-p %d" % src.port, "--apply"])
    assert cp.returncode == 1 and "stop it" in cp.stderr, cp.stdout + cp.stderr
    cp = run([BACKUP, "--dir", bdir, "--keep", "0"])
    assert cp.returncode == 2, cp.stderr
    cp = run([BACKUP, "--dir", bdir, "--redis-cli-args", "-p %d" % src.port,
              "--key", os.path.join(out, "no-such-key")])
    assert cp.returncode == 1 and "key file" in cp.stderr, cp.stderr
    cp = run([BACKUP, "--dir", bdir, "--redis-cli-args", "-p %d" % free_port(),
              "--key", keyfile])
    assert cp.returncode == 1 and "cannot reach Redis" in cp.stderr, cp.stderr

with tap.check("--apply over existing files moves them into <dir>/replaced-<time> "
               "(0700), none left beside Redis' files or the key; a backup run "
               "deletes those older than --keep days, as the generations"):
    # newdir holds the restored RDB file and the AOF of the restart above;
    # the key there now differs from the backup's.
    assert os.path.isfile(os.path.join(newdir, "dump.rdb")), os.listdir(newdir)
    assert os.path.isdir(os.path.join(newdir, "appendonlydir")), os.listdir(newdir)
    other = os.path.join(out, "other-key")
    run([KAIRANCTL, "keygen", other], check=True)
    shutil.copyfile(other, newkey)
    with open(os.path.join(newdir, "dump.rdb"), "rb") as f:
        old_rdb = f.read()
    cp = run([BACKUP, "--dir", bdir, "--restore", "latest", "--redis-dir", newdir,
              "--key-dest", newkey, "--redis-cli-args", "-p %d" % free_port(),
              "--apply"])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    left = [p for p in os.listdir(newdir) + os.listdir(os.path.dirname(newkey))
            if "before-restore" in p]
    assert not left, left
    reps = glob.glob(os.path.join(bdir, "replaced-*"))
    assert len(reps) == 1, reps
    rep = reps[0]
    assert re.fullmatch(r"replaced-\d{8}-\d{6}", os.path.basename(rep)), rep
    assert mode(rep) == 0o700, oct(mode(rep))
    with open(os.path.join(rep, "dump.rdb"), "rb") as f:
        assert f.read() == old_rdb
    assert os.path.isdir(os.path.join(rep, "appendonlydir"))
    assert read(os.path.join(rep, "key")) == read(other)
    assert mode(os.path.join(rep, "key")) == 0o600
    assert read(newkey) == read(keyfile) and mode(newkey) == 0o600
    assert rep in cp.stdout and "after 30 days" in cp.stdout, cp.stdout
    # The --list of generations is unchanged: a replaced directory is none.
    lst = run([BACKUP, "--list", "--dir", bdir], check=True).stdout
    assert "replaced-" not in lst, lst
    # A directory of an old restore (its name says when) goes with the next
    # backup; today's stays until it is --keep days old.
    old = os.path.join(bdir, "replaced-20200101-000000")
    os.makedirs(os.path.join(old, "appendonlydir"))
    with open(os.path.join(old, "dump.rdb"), "w") as f:
        f.write("old")
    cp = run([BACKUP, "--redis-cli-args", "-p %d" % src.port, "--dir", bdir,
              "--keep", "2", "--key", keyfile], timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert not os.path.exists(old), os.listdir(bdir)
    assert "pruned: %s" % old in cp.stdout, cp.stdout
    assert os.path.isdir(rep), os.listdir(bdir)
    gens_now = sorted(g for g in os.listdir(bdir)
                      if not g.startswith(".") and not g.startswith("replaced-"))
    assert len(gens_now) == 2, gens_now
if src:
    src.stop()

# ====================================================================== install

with tap.check("make install / uninstall with DESTDIR and PREFIX=/usr/local (and /usr)"):
    dest = os.path.join(out, "destdir")
    rel = os.path.relpath(BUILD, ROOT)
    # -o: install what is built, never rebuild (others may be editing).
    make = ["make", "-s", "--no-print-directory", "-C", ROOT, "BUILD=" + rel,
            "-o", rel + "/kairand", "-o", rel + "/kairanctl"]
    mk = make + ["DESTDIR=" + dest, "PREFIX=/usr/local"]
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    cp = run(mk + ["install"], env=env, timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    for p in ("usr/local/sbin/kairand", "usr/local/bin/kairanctl", "usr/local/sbin/kairan-backup",
              "etc/kairan/kairan.conf", "etc/kairan/kairan.conf.example",
              "usr/local/share/man/man8/kairand.8", "usr/local/share/man/man1/kairanctl.1",
              "usr/local/share/man/man5/kairan.conf.5", "usr/local/share/man/man8/kairan-backup.8",
              "usr/local/lib/systemd/system/kairand.service",
              "usr/local/lib/systemd/system/kairand@.service",
              "usr/local/share/bash-completion/completions/kairanctl",
              "usr/local/share/doc/kairan/runbook.md",
              "usr/local/share/kairan/redis-kairan.conf"):
        assert os.path.exists(os.path.join(dest, p)), "missing " + p
    unit = read(os.path.join(dest, "usr/local/lib/systemd/system/kairand.service"))
    assert "ExecStart=/usr/local/sbin/kairand -c /etc/kairan/kairan.conf" in unit
    assert "/usr/sbin/" not in unit
    assert mode(os.path.join(dest, "etc/kairan")) == 0o750
    assert mode(os.path.join(dest, "etc/kairan/kairan.conf")) == 0o640
    # An operator's changes survive a second install and the uninstall.
    conf = os.path.join(dest, "etc/kairan/kairan.conf")
    with open(conf, "a") as f:
        f.write("# changed by the operator\n")
    cp = run(mk + ["install"], env=env, timeout=300)
    assert cp.returncode == 0 and "kept" in cp.stdout, cp.stdout + cp.stderr
    assert read(conf).endswith("# changed by the operator\n")
    cp = run(mk + ["uninstall"], env=env, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    left = sorted(os.path.relpath(os.path.join(dp, f), dest)
                  for dp, _, fs in os.walk(dest) for f in fs)
    assert left == ["etc/kairan/kairan.conf"], left
    # PREFIX=/usr puts the units in /lib/systemd/system.
    dest2 = os.path.join(out, "destdir-usr")
    cp = run(make + ["DESTDIR=" + dest2, "PREFIX=/usr", "install"], env=env, timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert os.path.exists(os.path.join(dest2, "lib/systemd/system/kairand.service"))
    assert os.path.exists(os.path.join(dest2, "usr/sbin/kairand"))
    assert "ExecStart=/usr/sbin/kairand" in read(os.path.join(dest2, "lib/systemd/system/kairand.service"))

tap.diag("runtime: %.1f s" % (time.monotonic() - T0))
tap.done()
