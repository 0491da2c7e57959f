# mirrorkit - one non-recursive Makefile.
#
#   make            build bin: $(B)/mirrorkit and the test programs
#   make demo       run the reference pair with embedded defaults
#   make check      every test (unit suites, pair runs, shell tests)
#   make check-valgrind / check-asan / coverage / deps / clean
#   make fault-build  the fault build: libfiu points compiled in (build/fault)
#   make mutant-build a fault build with a planted bug, for the simulator's test
#   make fuzz-build / fuzz T=fuzz_sync S=600 / fuzz-replay / fuzz-smoke  (fuzz/README.md)
#   make fault/POINTS.md  regenerate the catalogue of fault points
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
ALL_CFLAGS = $(MK_WARN) $(MK_DEFS) $(PKG_CFLAGS) -Iref -Iverify -Ifault $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_MK  = $(XXH_LIBS) $(LDFLAGS_EXTRA)

LIB_SRCS  := $(filter-out ref/mirrorkit.c,$(wildcard ref/mk_*.c)) $(wildcard verify/mk_*.c) \
             $(wildcard fault/mk_*.c)
HDRS      := $(wildcard ref/*.h verify/*.h fault/*.h)
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/%.o)
BIN_OBJS  := $(B)/ref/mirrorkit.o
TEST_SRCS := $(wildcard tests/check_*.c)
TEST_BINS := $(TEST_SRCS:%.c=$(B)/%)
MIRRORKIT := $(B)/mirrorkit

.PHONY: all demo check check-unit check-shell check-valgrind check-asan \
        coverage deps clean fault-build mutant-build mutants bench bench-ab fault/POINTS.md
.DEFAULT_GOAL := all

# Objects remember what they were built with (compiler, flags, libraries):
# when a variant directory is built again with other flags - FIU_ENABLE,
# a sanitizer, another compiler - everything in it is rebuilt instead of
# old and new objects being mixed.
FLAGS_STAMP := $(B)/.flags
FLAGS_NOW    = $(CC) $(ALL_CFLAGS) | $(LDLIBS_MK)
$(shell mkdir -p $(B) && { [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = '$(FLAGS_NOW)' ] || \
    printf '%s\n' '$(FLAGS_NOW)' > $(FLAGS_STAMP); })

all: $(MIRRORKIT) $(TEST_BINS)

$(B)/%.o: %.c $(HDRS) $(FLAGS_STAMP) | deps-quiet
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libmirrorkit.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(MIRRORKIT): $(BIN_OBJS) $(B)/libmirrorkit.a $(FLAGS_STAMP)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $(BIN_OBJS) $(B)/libmirrorkit.a $(LDLIBS_MK)

$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(B)/libmirrorkit.a $(HDRS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(B)/libmirrorkit.a $(CHECK_LIBS) $(LDLIBS_MK)

demo: $(MIRRORKIT)
	./$(MIRRORKIT) demo

# Unit suites first, then the shell tests that drive the binary as a user
# would (pipe, TCP, SIGKILL and restart, dump).  The last line is the
# plain "N passed, N failed" summary CI reads.  The fault build comes
# first because tests/t_fault.sh drives it (a second build, ~15 s once).
check: all fault-build mutant-build fuzz-replay
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

# The ASan build is also a fault build, so the paths that fault points
# open (failed writes, syncs, allocations) are checked for leaks and
# memory errors; the points stay off unless a test enables them.
check-asan:
	$(MAKE) B=build/asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  EXTRA_CFLAGS=-DFIU_ENABLE LDFLAGS_EXTRA=-lfiu all
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

# The fault build: libfiu's points compiled in (fault/POINTS.md).
fault-build:
	$(MAKE) B=build/fault EXTRA_CFLAGS=-DFIU_ENABLE LDFLAGS_EXTRA=-lfiu all

# A planted bug (MK_MUTANT_SKIP_REDO: recovery marks a committed CP
# applied without redoing it) in a fault build, for tests/t_sim.sh to show
# that `mirrorkit sim` finds it and shrinks it to a short script.
mutant-build:
	$(MAKE) B=build/mutant EXTRA_CFLAGS="-DFIU_ENABLE -DMK_MUTANT_SKIP_REDO" LDFLAGS_EXTRA=-lfiu \
	  build/mutant/mirrorkit

# The catalogue of fault points, generated from the table in
# fault/mk_faults.h; tests/t_fault.sh checks the committed copy is current.
fault/POINTS.md: $(MIRRORKIT)
	./$(MIRRORKIT) faults --list --markdown > $@.tmp && mv $@.tmp $@

# ---- fuzzing (fuzz/README.md) ------------------------------------------
# Every fuzz/fuzz_<target>.c builds three ways, each into its own variant
# directory: AFL++ persistent mode (build/fuzz-afl, afl-clang-fast), a
# libFuzzer binary (build/fuzz-lf, clang -fsanitize=fuzzer,address,undefined)
# and a replay driver under ASan+UBSan (build/fuzz-replay) that runs files
# or directories of inputs.  All three accept a frame checksum of 0
# (MK_FUZZ_ANY_CHECKSUM), so mutations get past framing to the protocol.
FUZZ_SRCS    := $(wildcard fuzz/fuzz_*.c)
FUZZ_NAMES   := $(notdir $(FUZZ_SRCS:.c=))
FUZZ_SHARED  := $(filter-out fuzz/mk_fuzz_driver.c fuzz/mk_mutator.c,$(wildcard fuzz/mk_*.c))
FUZZ_HDRS    := $(wildcard fuzz/*.h)
FUZZ_DEFS    := -DMK_FUZZ_ANY_CHECKSUM
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
AFL_ENV      := AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
T ?= fuzz_sync
S ?= 600
# The custom mutator knows frame streams; the other inputs are log files,
# tables and scripts, which it would only garble.
FUZZ_MUTATED := fuzz_log fuzz_sync fuzz_source
mutator_for = $(if $(and $(wildcard fuzz/mk_mutator.c),$(filter $(1),$(FUZZ_MUTATED))),AFL_CUSTOM_MUTATOR_LIBRARY=build/fuzz-afl/fuzz/mk_mutator.so)

.PHONY: fuzz-build fuzz-afl fuzz-bins fuzz fuzz-replay fuzz-smoke fuzz-mutants

fuzz-bins: $(FUZZ_NAMES:%=$(B)/fuzz/%)

$(B)/fuzz/%: fuzz/%.c $(FUZZ_SHARED) $(FUZZ_HDRS) fuzz/mk_fuzz_driver.c $(B)/libmirrorkit.a $(HDRS)
	@mkdir -p $(dir $@)
ifeq ($(FUZZ_LIBFUZZER),1)
	$(CC) $(ALL_CFLAGS) -Ifuzz -fsanitize=fuzzer -o $@ $< $(FUZZ_SHARED) $(B)/libmirrorkit.a $(LDLIBS_MK)
else
	$(CC) $(ALL_CFLAGS) -Ifuzz -o $@ $< $(FUZZ_SHARED) fuzz/mk_fuzz_driver.c $(B)/libmirrorkit.a $(LDLIBS_MK)
endif

# The AFL++ custom mutator (frame-aware, repairs lengths and checksums).
$(B)/fuzz/mk_mutator.so: fuzz/mk_mutator.c $(FUZZ_HDRS) $(HDRS)
	@mkdir -p $(dir $@)
	cc $(MK_WARN) $(MK_DEFS) $(PKG_CFLAGS) -Iref -Ifuzz -O2 -g -shared -fPIC -o $@ $< \
	  $(filter-out ref/mirrorkit.c,$(wildcard ref/mk_cursor.c ref/mk_buf.c ref/mk_wire.c ref/mk_err.c ref/mk_prng.c)) $(XXH_LIBS)

# The AFL++ build alone (what make bench's speed section runs).
fuzz-afl:
	$(MAKE) B=build/fuzz-afl CC=afl-clang-fast CFLAGS="-O2 -g" EXTRA_CFLAGS="$(FUZZ_DEFS)" fuzz-bins \
	  $(if $(wildcard fuzz/mk_mutator.c),build/fuzz-afl/fuzz/mk_mutator.so)

fuzz-build: fuzz-afl
	$(MAKE) B=build/fuzz-replay CFLAGS="-O1 -g $(FUZZ_SAN)" EXTRA_CFLAGS="$(FUZZ_DEFS)" fuzz-bins
	$(MAKE) B=build/fuzz-lf CC=clang CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	  EXTRA_CFLAGS="$(FUZZ_DEFS)" FUZZ_LIBFUZZER=1 fuzz-bins

# Replays every corpus and every regression input under ASan+UBSan (part of
# make check: a crash found once stays fixed).
fuzz-replay:
	$(MAKE) B=build/fuzz-replay CFLAGS="-O1 -g $(FUZZ_SAN)" EXTRA_CFLAGS="$(FUZZ_DEFS)" fuzz-bins
	@for t in $(FUZZ_NAMES); do \
	  dirs=$$(ls -d fuzz/corpus/$$t fuzz/regressions/$$t 2>/dev/null); \
	  [ -n "$$dirs" ] || { echo "fuzz-replay: $$t has no corpus"; exit 1; }; \
	  printf '%s: ' $$t; build/fuzz-replay/fuzz/$$t $$dirs || exit 1; \
	done

# The destination mutants of verify/MUTANTS.md against the harnesses'
# oracles: how many corpus inputs of fuzz_log, fuzz_sync and fuzz_logstore
# catch each planted bug (fuzz/README.md, "Planted bugs").
fuzz-mutants:
	$(MAKE) B=build/fuzz-replay CFLAGS="-O1 -g $(FUZZ_SAN)" EXTRA_CFLAGS="$(FUZZ_DEFS)" build/fuzz-replay/libmirrorkit.a
	@MK_CFLAGS="$(MK_WARN) $(MK_DEFS) $(PKG_CFLAGS) -Iref -Iverify -Ifault -O1 -g $(FUZZ_SAN) $(FUZZ_DEFS)" \
	  MK_LIBS="$(XXH_LIBS)" MK_LIB=build/fuzz-replay/libmirrorkit.a sh fuzz/mutants_fuzz.sh

# One campaign: make fuzz T=fuzz_sync S=600 (seconds).
fuzz: fuzz-build
	@mkdir -p build/fuzz-out
	$(AFL_ENV) $(call mutator_for,$(T)) \
	  afl-fuzz -i fuzz/corpus/$(T) -o build/fuzz-out/$(T) $(if $(wildcard fuzz/$(T).dict),-x fuzz/$(T).dict) \
	  -V $(S) -- build/fuzz-afl/fuzz/$(T)

# CI: the replays, then every harness under afl-fuzz for a short while;
# fails on any crash or hang afl-fuzz saved.
FUZZ_SMOKE_S ?= 15
fuzz-smoke: fuzz-build fuzz-replay
	@rm -rf build/fuzz-smoke; mkdir -p build/fuzz-smoke
	@for t in $(FUZZ_NAMES); do \
	  mut=; case " $(FUZZ_MUTATED) " in *" $$t "*) [ -f build/fuzz-afl/fuzz/mk_mutator.so ] && \
	    mut=AFL_CUSTOM_MUTATOR_LIBRARY=build/fuzz-afl/fuzz/mk_mutator.so;; esac; \
	  env $(AFL_ENV) $$mut afl-fuzz -i fuzz/corpus/$$t -o build/fuzz-smoke/$$t $$( [ -f fuzz/$$t.dict ] && echo -x fuzz/$$t.dict ) \
	    -V $(FUZZ_SMOKE_S) -- build/fuzz-afl/fuzz/$$t > build/fuzz-smoke/$$t.log 2>&1 || \
	    { tail -20 build/fuzz-smoke/$$t.log; echo "fuzz-smoke: afl-fuzz failed for $$t"; exit 1; }; \
	  n=$$(ls build/fuzz-smoke/$$t/default/crashes build/fuzz-smoke/$$t/default/hangs 2>/dev/null | grep -c id:); \
	  execs=$$(sed -n 's/^execs_per_sec *: //p' build/fuzz-smoke/$$t/default/fuzzer_stats); \
	  echo "fuzz-smoke: $$t: $$execs execs/s, $$n crashes+hangs"; \
	  [ "$$n" -eq 0 ] || { echo "fuzz-smoke: $$t found a crash or hang: build/fuzz-smoke/$$t/default"; exit 1; }; \
	done

# Every planted bug of verify/MUTANTS.md, built from the files it touches
# and run through mirrorkit conform in its role; prints the kill table and
# fails if a mutant survives (CONFORMANCE.md section 5).
mutants: all
	@MIRRORKIT=$(MIRRORKIT) B=$(B) CC="$(CC)" MK_CFLAGS="$(ALL_CFLAGS)" MK_LIBS="$(LDLIBS_MK)" \
	  MK_OBJS="$(LIB_OBJS) $(BIN_OBJS)" sh verify/mutants.sh $(MUTANT)

# The measurements of README.md's "Performance", each with its baseline
# taken in the same run: mirrorkit bench (tables and the targets on stdout,
# CSV in $(B)/bench/, and PNG figures there too when gnuplot is installed).
# The work files go to /dev/shm, so that no disk is measured.
bench: all fuzz-afl
	TMPDIR=$$( [ -d /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp} ) ./$(MIRRORKIT) bench --csv $(B)/bench
	@if command -v gnuplot >/dev/null 2>&1; then \
	  gnuplot -e "dir='$(B)/bench'" verify/bench_plot.gp && \
	  echo "bench: figures in $(B)/bench/throughput.png and $(B)/bench/bandwidth.png"; \
	else echo "bench: gnuplot is not installed: CSV only, in $(B)/bench"; fi

# This tree's throughput against an earlier revision's, built and run side
# by side in the same minutes (verify/bench_ab.sh):
#   make bench-ab REV=bb57e14 [ROUNDS=5]
REV ?= bb57e14
ROUNDS ?= 3
bench-ab:
	sh verify/bench_ab.sh $(REV) $(ROUNDS)

# Debian packages the build and the tests need.  As root they are
# installed; otherwise the apt-get line is printed for the user to run.
DEB_PKGS := build-essential clang pkg-config libxxhash-dev xxhash check \
            libsubunit-dev libfiu-dev fiu-utils valgrind gcovr lcov python3 python3-xxhash rsync afl++
deps:
	@./tests/deps.sh $(DEB_PKGS)

deps-quiet:
	@./tests/deps.sh --quiet $(DEB_PKGS)

clean:
	rm -rf build
