# bench_plot.gp - draws mirrorkit bench's throughput and bandwidth figures
# from its CSV (mirrorkit bench --csv DIR):
#
#   gnuplot -e "dir='build/bench'" verify/bench_plot.gp
#
# writes DIR/throughput.png (the pair's MB/s in every transport, mode and
# workload, next to the storage floor and the raw transport measured in the
# same run; bars are medians, whiskers the fastest and slowest run) and
# DIR/bandwidth.png (bytes sent per client byte for each workload: on the
# wire, in the CP phase, by a naive full-block CP and by rsync).  make bench
# runs it when gnuplot is installed.
if (!exists("dir")) dir = "build/bench"
set datafile separator ","
set terminal pngcairo size 1400,620 font ",10"
set key top left
set grid ytics
set style fill solid 0.85 border -1
set boxwidth 0.9

# ---- throughput ------------------------------------------------------------
set output dir."/throughput.png"
set title "mirrorkit bench: throughput of the pair against the storage floor and the raw transport (MB/s of client data, log scale)"
set logscale y
set ylabel "MB/s"
set yrange [10:*]
set style data histogram
set style histogram errorbars gap 1.5 lw 1
set xtics rotate by -40 scale 0
label(t, m, w) = t." ".(m eq "semi-sync" ? "semi" : m)." ".w
plot dir."/throughput.csv" every ::1 using ($6/1e6):($7/1e6):($8/1e6):xtic(label(strcol(2), strcol(3), strcol(4))) title "pair" lc rgb "#1f77b4", \
     '' every ::1 using ($12/1e6):($13/1e6):($14/1e6) title "storage floor" lc rgb "#ff7f0e", \
     '' every ::1 using ($9/1e6):($10/1e6):($11/1e6) title "raw transport" lc rgb "#7f7f7f"

# ---- bandwidth -------------------------------------------------------------
set output dir."/bandwidth.png"
set title "mirrorkit bench: bytes sent per client byte, by workload (log scale)"
set ylabel "bytes sent / client bytes"
set yrange [0.005:*]
set style histogram clustered gap 1.5
set xtics norotate
plot dir."/bandwidth.csv" every ::1 using ($4/$3):xtic(2) title "mirrorkit: wire (LOG + CP + session)" lc rgb "#1f77b4", \
     '' every ::1 using ($5/$3) title "mirrorkit: CP phase" lc rgb "#2ca02c", \
     '' every ::1 using ($6/$3) title "naive full-block CP" lc rgb "#d62728", \
     '' every ::1 using ($10/$3) title "rsync --inplace --no-whole-file, sent" lc rgb "#7f7f7f"
