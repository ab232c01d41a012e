#!/usr/bin/env bash
# Lists and plans an organisation scan for a CI matrix: writes OUTDIR/repos.jsonl and
# OUTDIR/plan.json, then the matrix: `shards=[0,1,...]` (the plan's shard indexes, as JSON)
# and `count=N`, appended to $GITHUB_OUTPUT when set, else printed.
#
#   deploy/plan.sh URLS.txt SHARDS OUTDIR
#
# A GitHub Actions matrix holds at most 256 jobs, so more shards than that are planned as 256
# (with a warning): a plan the matrix cannot cover would leave shards unscanned and merge
# refusing. Needs jq. TRAWL names the trawl binary (default `trawl` on PATH).
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: deploy/plan.sh URLS.txt SHARDS OUTDIR" >&2
  exit 2
fi
urls=$1 shards=$2 out=$3
trawl=${TRAWL:-trawl}
max=256
case "$shards" in
  '' | *[!0-9]*) echo "plan.sh: SHARDS must be a whole number, not '$shards'" >&2; exit 2 ;;
esac
shards=$((10#$shards))
if [ "$shards" -lt 1 ]; then
  echo "plan.sh: SHARDS must be at least 1" >&2
  exit 2
fi
if [ "$shards" -gt "$max" ]; then
  echo "plan.sh: warning: $shards shards asked, a matrix holds $max: planning $max" >&2
  shards=$max
fi

mkdir -p "$out"
"$trawl" org list --from-file "$urls" -o "$out/repos.jsonl"
"$trawl" org plan "$out/repos.jsonl" --shards "$shards" -o "$out/plan.json"

indexes=$(jq -c '[.shards[].index]' "$out/plan.json")
count=$(jq '.shards | length' "$out/plan.json")
if [ "$count" -lt 1 ] || [ "$count" -gt "$max" ]; then
  echo "plan.sh: the plan has $count shards; a matrix takes 1 to $max" >&2
  exit 2
fi
{
  echo "shards=$indexes"
  echo "count=$count"
} >> "${GITHUB_OUTPUT:-/dev/stdout}"
