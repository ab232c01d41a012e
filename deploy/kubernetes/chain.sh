#!/bin/sh
# Runs an organisation scan on Kubernetes: the plan Job, then the shards (an Indexed Job),
# then the merge Job, each once the one before has completed. The nightly CronJob
# (nightly.yaml) runs this very script in the cluster; a person can run it from a laptop.
#
#   deploy/kubernetes/chain.sh [DIR]    DIR holds plan-job.yaml, shards-job.yaml and
#                                       merge-job.yaml (default: this script's folder)
# Environment:
#   NAMESPACE     where the Jobs run (default: kubectl's current namespace)
#   TRAWL_IMAGE   replaces the manifests' `image: trawl:latest` (your registry's trawl image)
#   POLL          seconds between status checks (default 20)
# Exit code: the merge's (0 clean, 1 findings at or above --fail-on); 2 when the plan or the
# shards failed, or merge refused; 3 when kubectl itself failed.
set -eu

dir=${1:-$(dirname "$0")}
poll=${POLL:-20}

k() {
  if [ -n "${NAMESPACE:-}" ]; then kubectl --namespace "$NAMESPACE" "$@"; else kubectl "$@"; fi
}

# The plan's shard count and the Indexed Job's completions must agree.
planned=$(sed -n 's/.*"--shards", "\([0-9]*\)".*/\1/p' "$dir/plan-job.yaml")
completions=$(sed -n 's/^  completions: *\([0-9]*\).*/\1/p' "$dir/shards-job.yaml")
if [ -z "$planned" ] || [ "$planned" != "$completions" ]; then
  echo "chain.sh: plan-job.yaml plans '$planned' shards but shards-job.yaml has completions '$completions'" >&2
  exit 2
fi

# Applies a Job manifest afresh (a Job's pod template cannot be changed, and a finished Job
# is not rerun by applying it again) and waits until it is Complete or Failed. Prints the
# final condition. Each Job has an activeDeadlineSeconds, and the nightly CronJob one of its
# own, so the wait is bounded.
run_job() {
  name=$1 file=$2
  k delete job "$name" --ignore-not-found --wait=true >&2 || exit 3
  if [ -n "${TRAWL_IMAGE:-}" ]; then
    sed "s|image: trawl:latest|image: $TRAWL_IMAGE|" "$file" | k apply -f - >&2 || exit 3
  else
    k apply -f "$file" >&2 || exit 3
  fi
  while :; do
    # A failed look-up (the API server restarting) is one more poll, not the chain's end.
    conditions=" $(k get job "$name" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' || true) "
    case "$conditions" in
      *" Complete "*) echo Complete; return ;;
      *" Failed "*) echo Failed; return ;;
    esac
    sleep "$poll"
  done
}

# `set -e` ends the chain with run_job's own exit (3) when kubectl fails.
plan=$(run_job trawl-plan "$dir/plan-job.yaml")
if [ "$plan" != Complete ]; then
  echo "chain.sh: the plan Job failed: kubectl logs job/trawl-plan --all-containers" >&2
  exit 2
fi
shards=$(run_job trawl-shards "$dir/shards-job.yaml")
if [ "$shards" != Complete ]; then
  failed=$(k get job trawl-shards -o jsonpath='{.status.failedIndexes}') || failed=unknown
  echo "chain.sh: shards failed (indexes: $failed); delete job/trawl-shards and apply shards-job.yaml again to redo only those" >&2
  exit 2
fi
result=$(run_job trawl-merge "$dir/merge-job.yaml")
k logs job/trawl-merge >&2 || true
if [ "$result" = Complete ]; then
  exit 0
fi
code=$(k get pods -l batch.kubernetes.io/job-name=trawl-merge \
  -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}') || exit 3
case "$code" in
  1) echo "chain.sh: findings at or above the merge's --fail-on: /data/report.sarif" >&2; exit 1 ;;
  *) echo "chain.sh: merge failed (exit ${code:-unknown})" >&2; exit 2 ;;
esac
