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


rule trained_teacher:
    output:
        directory("results/{study}/{teacher}/teacher.zarr"),
    log:
        "results/{study}/logs/teacher/{teacher}.log",
    benchmark:
        "results/{study}/benchmarks/teacher/{teacher}.tsv"
    wildcard_constraints:
        teacher=alternatives(TRAINED),
    conda:
        "../../envs/study.yaml"
    threads: 1
    params:
        spec=teacher_spec,
    script:
        "../scripts/trained_teacher.py"


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
        outputs=output_transform,
    script:
        "../scripts/queries.py"


rule download_dataset:
    output:
        "results/{study}/downloads/{dataset}.json",
    log:
        "results/{study}/logs/download/{dataset}.log",
    wildcard_constraints:
        dataset=alternatives(DATASETS_USED),
    localrule: True
    conda:
        "../../envs/study.yaml"
    params:
        files=lambda wildcards: data_files(config, wildcards.dataset),
    script:
        "../scripts/download.py"


rule download:
    input:
        expand(rules.download_dataset.output, study=STUDY, dataset=DATASETS_USED),
    localrule: True
