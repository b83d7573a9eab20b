#!/usr/bin/env bash
# Runs the smallest study (config/test.yaml) through profiles/slurm on a local Slurm, to
# check the profile for real. Needs a running one-node Slurm (slurmctld and slurmd, a
# default partition `debug`, no GPU gres, no accounting storage) and this package plus
# snakemake-executor-plugin-slurm in the current Python. Takes a few minutes.
# Usage: profiles/slurm/local-test.sh [RUN_DIR]   (default: a new /tmp/slurmrun.XXXXXX)
set -euo pipefail

# The profile and config paths below are relative to the repository root.
cd "$(dirname "$0")/../.."
# Results go to RUN_DIR, never to the repository's results/.
rundir="${1:-$(mktemp -d /tmp/slurmrun.XXXXXX)}"
mkdir -p "$rundir"

# --default-resources and --set-resources replace the profile's blocks (the CHANGE_ME
# placeholders) whole: no slurm_account (this Slurm has none), partition debug, little
# memory and time; train_students without a GPU (sbatch --gpus=1 fails without gres).
# --slurm-status-command squeue: sacct fails without accounting storage.
# The two status-check options only poll sooner and more often (defaults: 40 s, 10 s).
snakemake --workflow-profile profiles/slurm --configfile config/test.yaml \
    --directory "$rundir" \
    --default-resources slurm_partition=debug mem_mb=1000 runtime=10 \
    --set-resources train_students:gpu=0 train_students:mem_mb=1000 \
    train_students:runtime=10 \
    --slurm-status-command squeue \
    --slurm-init-seconds-before-status-checks 5 --seconds-between-status-checks 5 \
    --jobs 2

# The study's final table exists, and its jobs went through sbatch.
test -s "$rundir/results/test/tables/recoveries.csv"
grep -h "has been submitted with SLURM jobid" "$rundir"/.snakemake/log/*.snakemake.log
echo "OK: $rundir/results/test/tables/recoveries.csv"
