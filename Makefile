# mirrorkit - one non-recursive Makefile.
#
#   make            build bin: $(B)/mirrorkit and the test programs
#   make demo       run the reference pair with embedded defaults
#   make check      every test (unit suites, pair runs, shell tests)
#   make check-valgrind / check-asan / coverage / deps / clean
#
# Variants build into their own directory (B=...) so a sanitizer build
# never mixes objects with a normal one.

B        ?= build
CC       ?= cc
CFLAGS   ?= -O2 -g
MK_WARN  := -std=c11 -Wall -Wextra -Werror
MK_DEFS  := -D_DEFAULT_SOURCE -D_GNU_SOURCE
PKGS     := libxxhash check
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
XXH_LIBS   := $(shell pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)
ALL_CFLAGS = $(MK_WARN) $(MK_DEFS) $(PKG_CFLAGS) -Iref -Iverify $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_MK  = $(XXH_LIBS) $(LDFLAGS_EXTRA)

LIB_SRCS  := $(filter-out ref/mirrorkit.c,$(wildcard ref/mk_*.c)) $(wildcard verify/mk_*.c)
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/%.o)
BIN_OBJS  := $(B)/ref/mirrorkit.o
TEST_SRCS := $(wildcard tests/check_*.c)
TEST_BINS := $(TEST_SRCS:%.c=$(B)/%)
MIRRORKIT := $(B)/mirrorkit

.PHONY: all demo check check-unit check-shell check-valgrind check-asan \
        coverage deps clean
.DEFAULT_GOAL := all

all: $(MIRRORKIT) $(TEST_BINS)

$(B)/%.o: %.c $(wildcard ref/*.h verify/*.h) | deps-quiet
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libmirrorkit.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(MIRRORKIT): $(BIN_OBJS) $(B)/libmirrorkit.a
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $^ $(LDLIBS_MK)

$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(B)/libmirrorkit.a $(wildcard ref/*.h verify/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(B)/libmirrorkit.a $(CHECK_LIBS) $(LDLIBS_MK)

demo: $(MIRRORKIT)
	./$(MIRRORKIT) demo

# Unit suites first, then the shell tests that drive the binary as a user
# would (pipe, TCP, SIGKILL and restart, dump).  The last line is the
# plain "N passed, N failed" summary CI reads.
check: all
	@MIRRORKIT=$(MIRRORKIT) B=$(B) ./tests/run.sh $(TEST_BINS)

check-valgrind:
	$(MAKE) B=build/valgrind CFLAGS="-O1 -g" all
	@MIRRORKIT=build/valgrind/mirrorkit B=build/valgrind CK_FORK=no \
	  MK_WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect" \
	  ./tests/run.sh --unit-only $(patsubst $(B)/%,build/valgrind/%,$(TEST_BINS))
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  build/valgrind/mirrorkit demo --blocks 512 --cps 3 --writes 60 --transport pipe >/dev/null
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  build/valgrind/mirrorkit demo --blocks 512 --cps 3 --writes 60 --mode semi-sync >/dev/null
	@echo "check-valgrind: pair runs clean under memcheck"

check-asan:
	$(MAKE) B=build/asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" all
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  MIRRORKIT=build/asan/mirrorkit B=build/asan \
	  ./tests/run.sh $(patsubst $(B)/%,build/asan/%,$(TEST_BINS))

coverage:
	$(MAKE) B=build/cov CFLAGS="-O0 -g --coverage" LDFLAGS_EXTRA=--coverage all
	@MIRRORKIT=build/cov/mirrorkit B=build/cov \
	  ./tests/run.sh $(patsubst $(B)/%,build/cov/%,$(TEST_BINS))
	gcovr -r . --object-directory build/cov --filter ref/ --print-summary \
	  --txt build/cov/coverage.txt
	@tail -n 30 build/cov/coverage.txt

# Debian packages the build and the tests need.  As root they are
# installed; otherwise the apt-get line is printed for the user to run.
DEB_PKGS := build-essential clang pkg-config libxxhash-dev xxhash check \
            libsubunit-dev libfiu-dev fiu-utils valgrind gcovr lcov python3
deps:
	@./tests/deps.sh $(DEB_PKGS)

deps-quiet:
	@./tests/deps.sh --quiet $(DEB_PKGS)

clean:
	rm -rf build
