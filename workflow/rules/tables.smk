# The result tables (paper Tables 1-6, or the demo's analogues): every fine-tuning's metrics beside the
# paper's published value (results/paper), as CSV, Markdown and LaTeX (docs/tables.md). The numbers also go
# to metrics/tables.json, outside the tables folder, so that DVC tracks them as metrics. The published
# tables are inputs: a corrected paper value rebuilds the tables.
from alps.study import published_files
from alps.tables import PUBLISHED_DIR, write_study_tables

# The paper's tables as this workflow's repository publishes them (results/paper beside workflow/), also
# when Snakemake runs in another --directory.
PUBLISHED_TABLES = os.path.abspath(os.path.join(workflow.basedir, "..", PUBLISHED_DIR))


rule tables:
    input:
        metrics=[STUDY.finetune_metrics(run) for run in STUDY.finetune_runs],
        published=published_files(PUBLISHED_TABLES),
    output:
        tables=report(
            directory(STUDY.tables_dir()),
            patterns=["{name}.md"],
            caption="../report/tables.rst",
            category="Result tables",
        ),
        metrics=STUDY.tables_metrics(),
    log:
        f"{LOGS}/tables.log",
    threads: 1
    resources:
        mem_mb=2000,
    run:
        write_study_tables(
            LOADED.config, output.tables, output.metrics, published_dir=PUBLISHED_TABLES, log=log[0]
        )
