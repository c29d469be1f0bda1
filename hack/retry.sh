#!/usr/bin/env bash
# Usage: hack/retry.sh ATTEMPTS DELAY_SECONDS COMMAND [ARG...]
# Runs COMMAND until it succeeds, at most ATTEMPTS times, DELAY_SECONDS apart. Exits 0 on the
# first success; after the last failed attempt, says so and exits with COMMAND's status.
set -uo pipefail

if [[ $# -lt 3 || ! $1 =~ ^[1-9][0-9]*$ || ! $2 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 ATTEMPTS(>=1) DELAY_SECONDS COMMAND [ARG...]" >&2
  exit 2
fi
attempts=$1
delay=$2
shift 2

for ((attempt = 1; ; attempt++)); do
  "$@"
  status=$?
  if ((status == 0)); then
    exit 0
  fi
  if ((attempt >= attempts)); then
    echo "error: '$*' failed $attempts times (last exit status $status)" >&2
    exit "$status"
  fi
  echo "attempt $attempt of $attempts failed (exit status $status); retrying in ${delay}s" >&2
  sleep "$delay"
done
