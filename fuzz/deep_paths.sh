#!/bin/sh
# fuzz/deep_paths.sh - shows which deep protocol paths of ref/ a corpus
# reaches: builds fuzz_log, fuzz_sync, fuzz_source and fuzz_logstore with gcc --coverage
# (the replay driver, MK_FUZZ_ANY_CHECKSUM as in every fuzz build) into
# build/fuzz-cov/, replays the given corpora (default: fuzz/corpus/<t> and
# fuzz/regressions/<t>) and prints, for each marked line of ref/, how many
# times it ran.  A 0 means the corpus never reaches that path.
#
#   fuzz/deep_paths.sh                      # the checked-in corpora
#   fuzz/deep_paths.sh DIR_LOG DIR_SYNC DIR_SOURCE DIR_LOGSTORE   # e.g. afl-fuzz queues
set -eu
cd "$(dirname "$0")/.."
OUT=build/fuzz-cov
CFLAGS="-std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -DMK_FUZZ_ANY_CHECKSUM -Iref -Iverify -Ifault -Ifuzz -O0 -g --coverage"
XXH=$(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash)
SHARED=$(ls fuzz/mk_*.c | grep -v -e fuzz/mk_fuzz_driver.c -e fuzz/mk_mutator.c)

build_run() { # build_run TARGET DIRS...
    t=$1; shift
    rm -rf "$OUT/$t"; mkdir -p "$OUT/$t"
    objs=""
    for f in $(ls ref/mk_*.c verify/mk_*.c fault/mk_*.c) fuzz/$t.c $SHARED fuzz/mk_fuzz_driver.c; do
        o="$OUT/$t/$(echo "$f" | tr / _ | sed 's/\.c$/.o/')"
        cc $CFLAGS -c "$f" -o "$o"
        objs="$objs $o"
    done
    cc --coverage -o "$OUT/$t/$t" $objs $XXH
    "$OUT/$t/$t" "$@" 2>&1 | tail -1
}

# count TARGET FILE PATTERN LABEL: runs of the first line of FILE holding PATTERN
count() {
    n=$(gcov -t -o "$OUT/$1/$(echo "$2" | tr / _ | sed 's/\.c$/.gcda/')" "$2" 2>/dev/null |
        awk -v pat="$3" 'index($0, pat) { split($0, a, ":"); gsub(/ /, "", a[1]); print a[1]; exit }')
    case "$n" in "#####"|"=====") n=0 ;; esac
    printf '  %-58s %10s\n' "$4" "${n:-?}"
}

dirs() { # dirs TARGET [DIR]: the corpus and regressions, or DIR
    if [ -n "${2:-}" ]; then echo "$2"; else ls -d fuzz/corpus/$1 fuzz/regressions/$1 2>/dev/null || true; fi
}

for t in fuzz_log fuzz_sync; do
    if [ $t = fuzz_log ]; then d=$(dirs $t "${1:-}"); else d=$(dirs $t "${2:-}"); fi
    printf '%s (%s): ' $t "$(echo $d)"
    build_run $t $d
    count $t ref/mk_dest.c '            s->hash = r.hash;' 'REF resolved in the log (7.2 rules 1-5 hold)'
    count $t ref/mk_dest.c '        s->naked = 1;' 'REF resolution failed: block NAKed'
    count $t ref/mk_dest.c 'mk_nak_encode(&d->out' 'NAK sent (8.1)'
    count $t ref/mk_dest.c '        d->outstanding--;' 'NAKed block resent as CP_DATA'
    count $t ref/mk_dest.c '        return apply_cp(d);' 'CP applied when the last resend arrived'
    count $t ref/mk_dest.c '    return d->outstanding ? 0 : apply_cp(d);' 'CP_COMMIT accepted'
    count $t ref/mk_dest.c '        rc = apply_entries(d, e, n, digest);' 'CP applied to the mirror (7.4 step 5)'
    count $t ref/mk_dest.c 'mk_cp_ack_encode(&d->out' 'CP_ACK sent (7.5)'
    count $t ref/mk_logstore.c '        rc = mk_file_truncate(ls->f, MK_LOG_DATA_START);' 'log reclaimed after a CP (7.7)'
    count $t ref/mk_dest.c 'return mk_tree_nodes_encode(&d->out' 'TREE_QUERY answered (9.7)'
    count $t ref/mk_dest.c 'if ((rc = mk_log_ack_encode(&d->out' 'LOG_ACK sent (4.4 group commit)'
    count $t ref/mk_dest.c '    mk_error_encode(&d->out, d->send_seq++, err, msg);' 'frame refused: ERROR sent (3.4)'
    count $t ref/mk_dest.c '    mk_buf_clear(&d->in);' 'session ended and restarted (2.4)'
done

d=$(dirs fuzz_source "${3:-}")
printf 'fuzz_source (%s): ' "$(echo $d)"
build_run fuzz_source $d
t=fuzz_source
count $t ref/mk_source.c '    r->naked = 1;' 'NAK accepted: REF record becomes DATA (8.1)'
count $t ref/mk_source.c '    return emit_data(s, r);' 'CP_DATA resent for a NAKed block'
count $t ref/mk_source.c '        if (!(r->data = malloc(s->cfg.block_size)))' 'copy-on-write copy of a REF block taken (8.1)'
count $t ref/mk_source.c '        s->st.resent_transfers++;' 'transfer resent after HELLO_ACK (8.2)'
count $t ref/mk_source.c '        s->st.resent_cps++;' 'CP in flight resent after HELLO_ACK (8.2)'
count $t ref/mk_source.c '        if (a.last_digest != s->cp_digest)' 'CP_ACK lost: CP checked by HELLO_ACK digest (8.2)'
count $t ref/mk_source.c '        s->st.lost_transfers +=' 'destination lost acked transfers (8.3)'
count $t ref/mk_source.c '            d->whole = 0;' 'descriptors naming lost transfers made partial (8.3)'
count $t ref/mk_source.c '    if (!s->tree || mk_h128_eq(root, s->cp_root)) {' 'CP_ACK digest accepted, root compared (7.5)'
count $t ref/mk_source.c '        rc = mk_merkle_diff_answer(' 'Merkle descent: TREE_NODES entry checked (9.7)'
count $t ref/mk_source.c '        s->diff_truncated = mk_merkle_diff_truncated(s->diff);' 'descent done: MK_EVERIFY naming the blocks'
count $t ref/mk_source.c '                return session_lost(s, MK_EREMOTE);' 'damage ERROR: session lost, source resumes (8.5)'
count $t ref/mk_source.c '        return session_lost(s, rc);' 'damaged frame: session lost (8.5)'

d=$(dirs fuzz_logstore "${4:-}")
printf 'fuzz_logstore (%s): ' "$(echo $d)"
build_run fuzz_logstore $d
t=fuzz_logstore
count $t ref/mk_logstore.c '            if ((rc = probe_after(ls, off, size, seq)))' 'scan stopped at a bad or stale record (7.6 step 4)'
count $t ref/mk_logstore.c '            next = p + i + used; /* a stale record: skip it whole */' 'probe skipped a stale record (7.6 step 4b)'
count $t ref/mk_logstore.c '                rc = MK_ECORRUPT;' 'probe found a live record past the damage: MK_ECORRUPT'
count $t ref/mk_logstore.c '            if ((rc = mk_file_truncate(f, ls->end)) || (rc = mk_file_sync(f)))' 'torn tail cut (7.6 step 6)'
count $t ref/mk_dest.c '        d->stats.redo_cps++;' 'committed CP redone from its redo record (7.6 step 9)'

