#!/usr/bin/env bash
# One study, many GPUs on many hosts: a Slurm job array, one worker per array task (one GPU each).
# All workers share the study through PostgreSQL; a worker that dies costs at most its current
# trials, which another worker re-runs after the heartbeat grace period (30 s).
#
#   1. once:   redistill-study init studies/cifar100_classic.yaml \
#                --storage "$OPTUNA_URL" --tracking-uri "$MLFLOW_URI" --output "$OUT"
#   2. then:   sbatch --array=0-15 deploy/slurm_array.sh      (from the repository's root)
#
# Parameters come from the environment (sbatch passes it on): OPTUNA_URL and MLFLOW_URI (the
# shared stores), OUT (a shared folder: teacher cache and summary), STUDY (the config). The
# #SBATCH lines below are defaults; options on sbatch's command line win, e.g. on a cluster
# without GPUs:  sbatch --array=0-1 --gres=none --cpus-per-task=2 deploy/slurm_array.sh
# tests/study/test_cluster.py submits this very file to a one-node Slurm cluster.
#
#SBATCH --job-name=redistill
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --output=logs/redistill-%A_%a.out

set -euo pipefail
# Credentials come from the environment or ~/.pgpass, never from the command line.
: "${OPTUNA_URL:=postgresql+psycopg2://redistill@db.example.org/optuna}"
: "${MLFLOW_URI:=http://mlflow.example.org:5000}"
: "${OUT:=$HOME/redistill/cifar100_classic}"     # a shared folder: teacher cache and summary
: "${STUDY:=studies/cifar100_classic.yaml}"

source .venv/bin/activate
exec redistill-study run "$STUDY" \
    --storage "$OPTUNA_URL" \
    --tracking-uri "$MLFLOW_URI" \
    --output "$OUT" \
    --worker-label "slurm-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}" \
    --no-summary
