#!/usr/bin/env bash
# Plan the full study of a configuration (default config/paper.yaml) without running it: `alps placeholders`
# writes empty stand-ins for the raw archives, the SAM checkpoint, the box files and the prepared manifests
# (with the real datasets' image counts) in a scratch folder, and `snakemake -n` plans the whole DAG there.
# Prints Snakemake's job counts and how many training commands load an ImageNet backbone (--pretrained);
# the scratch folder is removed afterwards (PAPER_DRYRUN_LOG=FILE keeps the plan with every job's shell
# command there). Usage: paper-dryrun.sh [CONFIG]
set -euo pipefail
config=$(realpath "${1:-config/paper.yaml}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
alps placeholders "$config" "$scratch"
if ! snakemake -n --printshellcmds --cores 8 --resources gpu=8 --snakefile workflow/Snakefile --directory "$scratch" \
    --configfile "$config" > "$scratch/dryrun.log" 2>&1; then
    cat "$scratch/dryrun.log" >&2
    exit 1
fi
# Snakemake prints the job table before and after the plan: show the first one, up to its "total" line.
awk '/^Job stats:/ {show = 1} show {print} show && /^total/ {exit}' "$scratch/dryrun.log"
echo "training jobs: $(grep -cE 'alps (pretrain|finetune) ' "$scratch/dryrun.log" || true)," \
    "with --pretrained: $(grep -E 'alps (pretrain|finetune) ' "$scratch/dryrun.log" | grep -c -- '--pretrained' || true)"
if [[ -n "${PAPER_DRYRUN_LOG:-}" ]]; then
    cp "$scratch/dryrun.log" "$PAPER_DRYRUN_LOG"
fi
