#!/usr/bin/env bash
# Submits phase 1 of a job file as an array of N slices plus a merge step that runs once every
# slice has succeeded, and prints both job ids.
#
#   slurm/submit_array.sh jobs/kimi-k2-instruct.toml 8 [extra sbatch options for the slices]
#
# If a slice fails, the merge stays pending (DependencyNeverSatisfied): resubmit that task with
#   sbatch --array=I slurm/vindex_array.sbatch JOB.toml N     (it resumes from its journal)
# then submit slurm/vindex_merge.sbatch JOB.toml yourself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
job_file="${1:?usage: submit_array.sh JOB.toml N [sbatch options]}"
count="${2:?usage: submit_array.sh JOB.toml N [sbatch options]}"
shift 2
array_id="$(sbatch --parsable --array="0-$((count - 1))" "$@" "$here/vindex_array.sbatch" "$job_file" "$count")"
array_id="${array_id%%;*}"
merge_id="$(sbatch --parsable --dependency="afterok:${array_id}" "$here/vindex_merge.sbatch" "$job_file")"
merge_id="${merge_id%%;*}"
echo "array job ${array_id} (${count} slices), merge job ${merge_id}"
