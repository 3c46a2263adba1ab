# spec/gpu/tracks.sh — sourced by the specs that set runs side by side, step
# by step (offload_tracks.sh, zero_tracks.sh). They set $spec (their name),
# $steps and $tmp (where each run's folder and log go); `fail` becomes 1 at
# the first run that fails or loss that strays.
fail=0
loss_of() { grep -o '"loss":[-0-9.e+]*' "$1/metrics.jsonl" | cut -d: -f2; }
# ran NAME COMMAND...: runs COMMAND --run-dir $tmp/NAME, its output in $tmp/NAME.log
ran() {
  local name=$1; shift
  if ! "$@" --run-dir "$tmp/$name" >"$tmp/$name.log" 2>&1; then
    echo "$spec: $name failed:"; tail -5 "$tmp/$name.log"; fail=1; return 1
  fi
}
# compare REF GOT LIMIT: every step's loss of GOT within LIMIT (relative) of REF's
compare() {
  paste <(loss_of "$tmp/$1") <(loss_of "$tmp/$2") | awk -v what="$2" -v lim=$3 -v steps=$steps '
    { n++; d = $2 - $1; if (d < 0) d = -d; r = d / $1; if (r > worst) { worst = r; at = n } }
    END { printf "%s: %d steps, worst relative loss difference %.2e at step %d (limit %.0e)\n", what, n, worst, at, lim
          exit !(n == steps && worst <= lim) }' || fail=1
}
