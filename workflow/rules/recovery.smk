rule recover:
    input:
        students=rules.gather_students.output[0],
        queries=rules.queries.output[0],
    output:
        store=directory("results/{study}/{teacher}/recovery/{expansion}/{recovery}/recovery.zarr"),
        summary="results/{study}/{teacher}/recovery/{expansion}/{recovery}/recovery.json",
    log:
        "results/{study}/logs/recover/{teacher}/{expansion}/{recovery}.log",
    benchmark:
        "results/{study}/benchmarks/recover/{teacher}/{expansion}/{recovery}.tsv"
    conda:
        "../../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        activation=activation,
        settings=recovery_settings,
        labels=recovery_labels,
    script:
        "../scripts/recover.py"


rule evaluate:
    input:
        summary=rules.recover.output.summary,
        store=rules.recover.output.store,
        teacher=rules.synthetic_teacher.output[0],
        queries=rules.queries.output[0],
        students=rules.gather_students.output[0],
    output:
        "results/{study}/{teacher}/recovery/{expansion}/{recovery}/metrics.json",
    log:
        "results/{study}/logs/evaluate/{teacher}/{expansion}/{recovery}.log",
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        heldout=heldout_design,
        labels=recovery_labels,
        student_widths=student_widths,
        settings=config["evaluation"],
    script:
        "../scripts/evaluate.py"
