build-fuzz/common/kn.o: common/kn.c common/kn.h

common/kn.h:
