# mk/faults.mk - the fault matrix and the soak (issue 4, "Faults").
# Included from the Makefile.
#   make test-faults    tests/faults/test_*.py through tests/run.sh's TAP
#                       counting; ends with "N passed, N failed".
#                       KAIRAN_TEST_SCALE shrinks the big broadcast,
#                       KAIRAN_FAULT_KILLS sets the number of kill -9
#                       (default 20; of kairand, and of the Redis primary
#                       in test_sentinel_failover.py), KAIRAN_TEST_SEED
#                       replays a run.
#                       tests/faults/push_dups.py DIR sorts the duplicate
#                       pushes of a kill matrix run kept with
#                       KAIRAN_KEEP_TMP=1 (DIR: its faults-kill-*).
#   make soak           tests/faults/soak.py: KAIRAN_SOAK_N deliveries
#                       (default 1,000,000) with random faults, printing
#                       kairand's RSS over time.

.PHONY: test-faults soak

test-faults: $(PROGS)
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) KAIRAN_ONLY=integration \
	    KAIRAN_TEST_DIR=tests/faults tests/run.sh

soak: $(PROGS)
	@BUILD=$(BUILD) /usr/bin/python3 tests/faults/soak.py
