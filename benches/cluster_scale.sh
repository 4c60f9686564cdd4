#!/usr/bin/env bash
# Cluster scale: memory and time to first sync of the cluster zone fed by a Kubernetes API.
#
#   benches/cluster_scale.sh [SERVICES] [ENDPOINTS_PER_SERVICE] [PODS] [CHANGES]
#
# Defaults: 10000 services x 10 endpoints = 100,000 endpoints, no pods (pods = "insecure";
# PODS > 0 serves that many pods too and sets pods = "verified", which watches them), 100
# changes (a service added, then deleted, and so on, each timed to when it shows: p50/p90/p99),
# then a forced re-list (every watch answered ERROR 410 Gone).
#
# The measurement is benches/cluster_scale.rs (a bench target without a harness, built in
# release): it generates the objects into the fake API server of tests/common/apiserver.rs,
# starts the release `hearth` binary as its own process against it, and prints: the time from
# process start to the last service answering, Hearth's RSS (and peak) after the first sync,
# its CPU seconds, how long a change takes to show at that size, and the RSS after and the
# peak during two forced re-lists, one of an unchanged cluster and one that brings a change
# the watches missed (RSS sampled every 2 ms: VmHWM is the peak of the process's whole life).
# Loopback only; the server is stopped at the end, pass or fail. Run it alone: it takes both cores for a few seconds, and
# other builds on the machine show in every number (`pgrep -a rustc` first).
set -euo pipefail
cd "$(dirname "$0")/.."
export HEARTH_SCALE_SERVICES="${1:-10000}"
export HEARTH_SCALE_ENDPOINTS_PER_SERVICE="${2:-10}"
export HEARTH_SCALE_PODS="${3:-0}"
export HEARTH_SCALE_CHANGES="${4:-100}"
exec cargo bench --bench cluster_scale
