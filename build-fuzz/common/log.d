build-fuzz/common/log.o: common/log.c common/log.h common/kn.h

common/log.h:

common/kn.h:
