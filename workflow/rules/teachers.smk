rule synthetic_teacher:
    output:
        directory("results/{study}/{teacher}/teacher.zarr"),
    log:
        "results/{study}/logs/teacher/{teacher}.log",
    wildcard_constraints:
        teacher=alternatives(SYNTHETIC),
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        spec=teacher_spec,
    script:
        "../scripts/synthetic_teacher.py"


rule digits_teacher:
    output:
        directory("results/{study}/{teacher}/teacher.zarr"),
    log:
        "results/{study}/logs/teacher/{teacher}.log",
    benchmark:
        "results/{study}/benchmarks/teacher/{teacher}.tsv"
    wildcard_constraints:
        teacher=alternatives(DIGITS),
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        spec=teacher_spec,
    script:
        "../scripts/digits_teacher.py"


rule queries:
    input:
        teacher=rules.synthetic_teacher.output[0],
    output:
        "results/{study}/{teacher}/queries.npz",
    log:
        "results/{study}/logs/queries/{teacher}.log",
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        design=query_design,
    script:
        "../scripts/queries.py"
