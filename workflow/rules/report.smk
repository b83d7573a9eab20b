rule recovery_figures:
    input:
        summary=rules.recover.output.summary,
        store=rules.recover.output.store,
        metrics=rules.evaluate.output[0],
    output:
        similarity=report(
            "results/{study}/{teacher}/recovery/{expansion}/{recovery}/figures/similarity.png",
            caption="../report/similarity.rst",
            category="Recoveries",
            subcategory="{teacher}",
            labels={
                "teacher": "{teacher}",
                "expansion": "{expansion}",
                "recovery": "{recovery}",
                "figure": "similarity matrix",
            },
        ),
        dendrogram=report(
            "results/{study}/{teacher}/recovery/{expansion}/{recovery}/figures/dendrogram.png",
            caption="../report/dendrogram.rst",
            category="Recoveries",
            subcategory="{teacher}",
            labels={
                "teacher": "{teacher}",
                "expansion": "{expansion}",
                "recovery": "{recovery}",
                "figure": "dendrogram",
            },
        ),
        cluster_angles=report(
            "results/{study}/{teacher}/recovery/{expansion}/{recovery}/figures/cluster_angles.png",
            caption="../report/cluster_angles.rst",
            category="Recoveries",
            subcategory="{teacher}",
            labels={
                "teacher": "{teacher}",
                "expansion": "{expansion}",
                "recovery": "{recovery}",
                "figure": "cluster angles",
            },
        ),
        alignment=report(
            "results/{study}/{teacher}/recovery/{expansion}/{recovery}/figures/alignment.png",
            caption="../report/alignment.rst",
            category="Recoveries",
            subcategory="{teacher}",
            labels={
                "teacher": "{teacher}",
                "expansion": "{expansion}",
                "recovery": "{recovery}",
                "figure": "alignment with the teacher",
            },
        ),
    log:
        "results/{study}/logs/recovery_figures/{teacher}/{expansion}/{recovery}.log",
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        settings=figure_settings,
    script:
        "../scripts/recovery_figures.py"


rule tables:
    input:
        metrics=all_metrics,
        train_benchmarks=train_benchmarks,
        recover_benchmarks=recover_benchmarks,
    output:
        recoveries_csv=report(
            "results/{study}/tables/recoveries.csv",
            caption="../report/recoveries_table.rst",
            category="Tables",
            labels={"table": "recoveries"},
        ),
        recoveries_md="results/{study}/tables/recoveries.md",
        summary_csv=report(
            "results/{study}/tables/summary.csv",
            caption="../report/summary_table.rst",
            category="Tables",
            labels={"table": "summary"},
        ),
        summary_md="results/{study}/tables/summary.md",
        timings_csv=report(
            "results/{study}/tables/timings.csv",
            caption="../report/timings_table.rst",
            category="Tables",
            labels={"table": "timings"},
        ),
        timings_md="results/{study}/tables/timings.md",
        success_csv=report(
            "results/{study}/tables/success.csv",
            caption="../report/success_table.rst",
            category="Tables",
            labels={"table": "success rates"},
        ),
        success_md="results/{study}/tables/success.md",
        ease_csv=report(
            "results/{study}/tables/ease.csv",
            caption="../report/ease_table.rst",
            category="Tables",
            labels={"table": "ease of identifiability"},
        ),
        ease_md="results/{study}/tables/ease.md",
        trained_csv=report(
            "results/{study}/tables/trained.csv",
            caption="../report/trained_table.rst",
            category="Tables",
            labels={"table": "trained teachers"},
        ),
        trained_md="results/{study}/tables/trained.md",
        neurons_csv=report(
            "results/{study}/tables/neurons.csv",
            caption="../report/neurons_table.rst",
            category="Tables",
            labels={"table": "recovered neurons"},
        ),
        neurons_md="results/{study}/tables/neurons.md",
        flags_csv=report(
            "results/{study}/tables/flags.csv",
            caption="../report/flags_table.rst",
            category="Tables",
            labels={"table": "confidence flags"},
        ),
        flags_md="results/{study}/tables/flags.md",
    log:
        "results/{study}/logs/tables.log",
    conda:
        "../../envs/study.yaml"
    threads: 1
    script:
        "../scripts/tables.py"


rule study_figures:
    input:
        metrics=all_metrics,
    output:
        identifiability=report(
            "results/{study}/figures/identifiability.png",
            caption="../report/identifiability.rst",
            category="Study",
            labels={"figure": "identifiability"},
        ),
        expansion_control=report(
            "results/{study}/figures/expansion_control.png",
            caption="../report/expansion_control.rst",
            category="Study",
            labels={"figure": "expansion control"},
        ),
        ease=report(
            "results/{study}/figures/ease.png",
            caption="../report/ease.rst",
            category="Study",
            labels={"figure": "ease of identifiability"},
        ),
        trained=report(
            "results/{study}/figures/trained_teachers.png",
            caption="../report/trained_teachers.rst",
            category="Study",
            labels={"figure": "trained teachers"},
        ),
    log:
        "results/{study}/logs/study_figures.log",
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        settings=figure_settings,
    script:
        "../scripts/study_figures.py"


# Only a study whose teachers' outputs reach the students transformed (teachers.synthetic
# .outputs) asks for these (final_targets).
rule robustness:
    input:
        metrics=all_metrics,
    output:
        table_csv=report(
            "results/{study}/tables/robustness.csv",
            caption="../report/robustness_table.rst",
            category="Tables",
            labels={"table": "imperfect outputs"},
        ),
        table_md="results/{study}/tables/robustness.md",
        figure=report(
            "results/{study}/figures/robustness.png",
            caption="../report/robustness.rst",
            category="Study",
            labels={"figure": "imperfect outputs"},
        ),
    log:
        "results/{study}/logs/robustness.log",
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        settings=figure_settings,
    script:
        "../scripts/robustness.py"
