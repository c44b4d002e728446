# mk/install.mk - "make install" and "make uninstall", included at the end
# of the Makefile.  Puts kairan where Debian (and the FHS) expect it:
#
#   $(PREFIX)/sbin/kairand, $(PREFIX)/sbin/kairan-backup
#   $(PREFIX)/bin/kairanctl
#   /etc/kairan/kairan.conf.example            always (the documentation)
#   /etc/kairan/kairan.conf                    only if absent (never
#                                              overwrites an operator's file)
#   $(PREFIX)/share/man/man{1,5,8}/            kairanctl(1) kairan.conf(5)
#                                              kairand(8) kairan-backup(8)
#   $(UNITDIR)/                                kairand.service,
#                                              kairand@.service,
#                                              kairan-backup.{service,timer}
#   $(PREFIX)/share/bash-completion/completions/kairanctl
#   $(PREFIX)/share/kairan/                    the operators' kit (Redis
#                                              fragment, alert rules,
#                                              Grafana dashboard)
#   $(PREFIX)/share/doc/kairan/runbook.md
#
# PREFIX defaults to /usr/local; a package build uses PREFIX=/usr and
# DESTDIR=<staging root>.  The configuration is always under /etc (not
# $(PREFIX)/etc): kairand and kairanctl look there by default.  The units
# go to /lib/systemd/system when PREFIX=/usr (Debian 12), else to
# $(PREFIX)/lib/systemd/system, and their ExecStart= paths follow PREFIX.
#
# kairan.conf is the example with the outbox under /var/lib/kairan (the
# unit's StateDirectory); the audit logs' default, /var/log/kairan, is the
# unit's LogsDirectory already.
#
# Distribution build flags: EXTRA_CFLAGS and EXTRA_LDFLAGS are appended to
# the Makefile's own (debian/rules passes dpkg-buildflags' hardening flags
# this way; the Makefile's CFLAGS cannot be overridden from the command
# line without losing -I and the warnings).

PREFIX      ?= /usr/local
DESTDIR     ?=
SBINDIR     := $(PREFIX)/sbin
BINDIR      := $(PREFIX)/bin
DATADIR     := $(PREFIX)/share/kairan
DOCDIR      := $(PREFIX)/share/doc/kairan
MANDIR      := $(PREFIX)/share/man
COMPDIR     := $(PREFIX)/share/bash-completion/completions
CONFDIR     := /etc/kairan
ifeq ($(PREFIX),/usr)
UNITDIR     ?= /lib/systemd/system
else
UNITDIR     ?= $(PREFIX)/lib/systemd/system
endif
KN_INSTALL  := install

CFLAGS  += $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)

KN_UNITS := kairand.service kairand@.service kairan-backup.service \
            kairan-backup.timer
KN_MAN   := man1/kairanctl.1 man5/kairan.conf.5 man8/kairand.8 \
            man8/kairan-backup.8
KN_KIT   := redis-kairan.conf prometheus/kairan-alerts.yml \
            prometheus/kairan-alerts.test.yml grafana/kairan-dashboard.json

# The example with the service's absolute paths (see above), on stdout.
KN_CONF_GEN = { echo '\# /etc/kairan/kairan.conf: config/kairan.conf.example with the'; \
                echo '\# absolute outbox.dir of the packaged service.  See kairan.conf(5).'; \
                echo '\#'; \
                sed -e 's|^dir = outbox$$|dir = /var/lib/kairan/outbox|' \
                    config/kairan.conf.example; }

.PHONY: install uninstall
install: $(BUILD)/kairand $(BUILD)/kairanctl
	$(KN_INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR)
	$(KN_INSTALL) -m 0755 $(BUILD)/kairand $(DESTDIR)$(SBINDIR)/kairand
	$(KN_INSTALL) -m 0755 scripts/backup.sh $(DESTDIR)$(SBINDIR)/kairan-backup
	$(KN_INSTALL) -m 0755 $(BUILD)/kairanctl $(DESTDIR)$(BINDIR)/kairanctl
	$(KN_INSTALL) -d -m 0750 $(DESTDIR)$(CONFDIR)
	$(KN_INSTALL) -m 0644 config/kairan.conf.example \
		$(DESTDIR)$(CONFDIR)/kairan.conf.example
	@if [ -e $(DESTDIR)$(CONFDIR)/kairan.conf ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/kairan.conf (already there)"; \
	else \
		$(KN_CONF_GEN) >$(DESTDIR)$(CONFDIR)/kairan.conf.new && \
		chmod 0640 $(DESTDIR)$(CONFDIR)/kairan.conf.new && \
		mv $(DESTDIR)$(CONFDIR)/kairan.conf.new \
			$(DESTDIR)$(CONFDIR)/kairan.conf && \
		echo "installed $(DESTDIR)$(CONFDIR)/kairan.conf"; \
	fi
	$(KN_INSTALL) -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8
	for m in $(KN_MAN); do \
		$(KN_INSTALL) -m 0644 man/$${m#*/} $(DESTDIR)$(MANDIR)/$$m || exit 1; \
	done
	$(KN_INSTALL) -d $(DESTDIR)$(UNITDIR)
	for u in $(KN_UNITS); do \
		sed -e 's|/usr/sbin/|$(SBINDIR)/|g' systemd/$$u \
			>$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(KN_INSTALL) -d $(DESTDIR)$(COMPDIR)
	$(KN_INSTALL) -m 0644 contrib/kairanctl.bash-completion \
		$(DESTDIR)$(COMPDIR)/kairanctl
	$(KN_INSTALL) -d $(DESTDIR)$(DATADIR)/prometheus $(DESTDIR)$(DATADIR)/grafana
	for f in $(KN_KIT); do \
		$(KN_INSTALL) -m 0644 contrib/$$f $(DESTDIR)$(DATADIR)/$$f || exit 1; \
	done
	$(KN_INSTALL) -d $(DESTDIR)$(DOCDIR)
	$(KN_INSTALL) -m 0644 docs/runbook.md $(DESTDIR)$(DOCDIR)/runbook.md
	@if [ -z "$(DESTDIR)" ] && ! getent passwd kairan >/dev/null; then \
		echo "next: create the service user and the key, e.g."; \
		echo "  adduser --system --group --home /var/lib/kairan kairan"; \
		echo "  chgrp kairan $(CONFDIR) $(CONFDIR)/kairan.conf"; \
		echo "  runuser -u kairan -- $(BINDIR)/kairanctl keygen $(CONFDIR)/key"; \
		echo "  systemctl daemon-reload && systemctl enable --now kairand"; \
	fi

# Removes what install put there, except an operator's kairan.conf that
# differs from the one install wrote, and the key file (never deleted:
# without it nothing sealed in Redis can be read again).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/kairand $(DESTDIR)$(SBINDIR)/kairan-backup \
		$(DESTDIR)$(BINDIR)/kairanctl
	for m in $(KN_MAN); do rm -f $(DESTDIR)$(MANDIR)/$$m; done
	for u in $(KN_UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	rm -f $(DESTDIR)$(COMPDIR)/kairanctl
	for f in $(KN_KIT); do rm -f $(DESTDIR)$(DATADIR)/$$f; done
	rmdir $(DESTDIR)$(DATADIR)/prometheus $(DESTDIR)$(DATADIR)/grafana \
		$(DESTDIR)$(DATADIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(DOCDIR)/runbook.md
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(CONFDIR)/kairan.conf.example
	@if [ -f $(DESTDIR)$(CONFDIR)/kairan.conf ]; then \
		if $(KN_CONF_GEN) | cmp -s - $(DESTDIR)$(CONFDIR)/kairan.conf; then \
			rm -f $(DESTDIR)$(CONFDIR)/kairan.conf; \
		else \
			echo "kept $(DESTDIR)$(CONFDIR)/kairan.conf (changed since install)"; \
		fi; \
	fi
	@if [ -e $(DESTDIR)$(CONFDIR)/key ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/key (remove it yourself: data sealed with it becomes unreadable)"; \
	fi
	rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true
