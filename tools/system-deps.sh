#!/usr/bin/env bash
# What the test suite needs from the operating system, installed where missing (Debian):
# PostgreSQL's server binaries (the worker tests start a throwaway cluster), Chromium (the
# dashboard is checked in a real browser), the Fashion-MNIST idx files (the real mid-size data
# set) and Slurm with munge (the Slurm array script runs on a one-node cluster). Without root, or without apt-get, it says what is missing and carries on: the
# tests that need a missing piece are skipped with that reason.
set -uo pipefail

missing=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    missing+=(chromium)
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    missing+=(dataset-fashion-mnist)
fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    missing+=(slurm-wlm munge)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installed (needs root and apt-get): ${missing[*]}; the tests that need them are skipped" >&2
    exit 0
fi
echo "installing: ${missing[*]}" >&2
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
