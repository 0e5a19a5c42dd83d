# The result tables (paper Tables 1-6, or the demo's analogues): every fine-tuning's metrics beside the
# paper's published value (results/paper), as CSV, Markdown and LaTeX (docs/tables.md). The numbers also go
# to metrics/tables.json, outside the tables folder, so that DVC tracks them as metrics.

from alps.tables import PUBLISHED_DIR

PUBLISHED_TABLES = str(PUBLISHED_DIR)


rule tables:
    input:
        metrics=[STUDY.finetune_metrics(run) for run in STUDY.finetune_runs],
        published=PUBLISHED_TABLES,
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
        from alps.tables import write_study_tables

        write_study_tables(
            config, output.tables, output.metrics, published_dir=os.path.abspath(input.published), log=log[0]
        )
