build-fuzz/common/seal.o: common/seal.c common/seal.h common/kn.h

common/seal.h:

common/kn.h:
