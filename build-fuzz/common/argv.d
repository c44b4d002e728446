build-fuzz/common/argv.o: common/argv.c common/argv.h common/kn.h

common/argv.h:

common/kn.h:
