rule train_students:
    input:
        queries=rules.queries.output[0],
    output:
        directory("results/{study}/{teacher}/students/{expansion}/seed{seed}.zarr"),
    log:
        "results/{study}/logs/train_students/{teacher}/{expansion}/seed{seed}.log",
    benchmark:
        "results/{study}/benchmarks/train_students/{teacher}/{expansion}/seed{seed}.tsv"
    conda:
        "../../envs/study.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    params:
        activation=activation,
        widths=student_widths,
        n_students=students_per_job,
        settings=student_training,
        attrs=student_attrs,
        checkpoint=training_checkpoint,
        label=training_label,
    script:
        "../scripts/train_students.py"


rule gather_students:
    input:
        seed_stores,
    output:
        directory("results/{study}/{teacher}/students/{expansion}.zarr"),
    log:
        "results/{study}/logs/gather_students/{teacher}/{expansion}.log",
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        seeds=student_seeds,
        attrs=gather_attrs,
    script:
        "../scripts/gather_students.py"
