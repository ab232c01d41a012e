#!/usr/bin/env bash
# Runs one shard of an organisation scan, `trawl org scan "$@"`, retrying what is worth
# retrying. For engines without a retry policy of their own (a CI matrix, a plain loop); the
# Kubernetes Indexed Job retries by itself (backoffLimitPerIndex) and runs trawl directly.
#
#   deploy/shard.sh --plan plan.json --shard 3/16 --out shards [--cache DIR] [--state DIR]
#
# Exit codes of `trawl org scan`, and what this script does with them:
#   0   the shard is done (with or without findings: the gate is `trawl org merge`) -> 0
#   75  retryable (network, fetch, I/O writing the output): retried up to TRAWL_RETRIES
#       times (default 3), waiting TRAWL_RETRY_DELAY seconds (default 30), doubled each time;
#       still 75 after the last try -> 75
#   2   fatal (bad flags, wrong plan, index out of range): retrying cannot help -> 2, at once
#   any other code (a crash, a kill) -> passed through, not retried.
# A killed shard resumes where it stopped, so a retry costs only what was left.
#
# Environment: TRAWL (the trawl binary, default `trawl` on PATH), TRAWL_RETRIES,
# TRAWL_RETRY_DELAY; the forge tokens trawl reads (GITHUB_TOKEN, ...) pass through untouched
# and are never printed.
set -uo pipefail

trawl=${TRAWL:-trawl}
retries=${TRAWL_RETRIES:-3}
delay=${TRAWL_RETRY_DELAY:-30}
case "$retries$delay" in
  *[!0-9]*) echo "shard.sh: TRAWL_RETRIES and TRAWL_RETRY_DELAY must be whole numbers" >&2; exit 2 ;;
esac

attempt=0
while :; do
  "$trawl" org scan "$@"
  code=$?
  if [ "$code" -ne 75 ]; then
    exit "$code"
  fi
  if [ "$attempt" -ge "$retries" ]; then
    echo "shard.sh: still failing (exit 75) after $((attempt + 1)) attempts; retry the shard later" >&2
    exit 75
  fi
  attempt=$((attempt + 1))
  echo "shard.sh: retryable failure (exit 75); attempt $((attempt + 1)) of $((retries + 1)) in ${delay}s" >&2
  sleep "$delay"
  delay=$((delay * 2))
done
