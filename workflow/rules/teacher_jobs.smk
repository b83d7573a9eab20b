# One job per synthetic teacher (config key jobs.one_per_teacher): the teacher, its
# queries, every expansion's training, gathering, recovery and evaluation in one process,
# writing the same files as the per-step rules (those stay defined: digits teachers use
# them, and the rule order below makes this rule the one that builds a synthetic teacher's
# files). It saves a process start (about 3 s of imports) per step, which dominates a study
# of many small teachers.


rule solve_teacher:
    output:
        teacher=directory(str(rules.synthetic_teacher.output[0])),
        queries=rules.queries.output[0],
        seed_stores=[
            directory(p)
            for p in per_teacher(
                rules.train_students.output[0], expansion=SYNTHETIC_EXPANSIONS, seed=SEEDS
            )
        ],
        students=[
            directory(p)
            for p in per_teacher(rules.gather_students.output[0], expansion=SYNTHETIC_EXPANSIONS)
        ],
        stores=[
            directory(p)
            for p in per_teacher(
                rules.recover.output.store, expansion=SYNTHETIC_EXPANSIONS, recovery=RECOVERIES
            )
        ],
        summaries=per_teacher(
            rules.recover.output.summary, expansion=SYNTHETIC_EXPANSIONS, recovery=RECOVERIES
        ),
        metrics=per_teacher(
            rules.evaluate.output[0], expansion=SYNTHETIC_EXPANSIONS, recovery=RECOVERIES
        ),
        train_benchmarks=per_teacher(
            rules.train_students.benchmark, expansion=SYNTHETIC_EXPANSIONS, seed=SEEDS
        ),
        recover_benchmarks=per_teacher(
            rules.recover.benchmark, expansion=SYNTHETIC_EXPANSIONS, recovery=RECOVERIES
        ),
    log:
        "results/{study}/logs/solve_teacher/{teacher}.log",
    benchmark:
        "results/{study}/benchmarks/solve_teacher/{teacher}.tsv"
    wildcard_constraints:
        teacher=alternatives(SYNTHETIC),
    conda:
        "../../envs/study.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=240,
    params:
        plan=teacher_job,
        heldout=heldout_design,
        evaluation=config["evaluation"],
        n_students=config["students"]["per_job"],
        train=config["students"]["train"],
    script:
        "../scripts/solve_teacher.py"


ruleorder: solve_teacher > synthetic_teacher
ruleorder: solve_teacher > queries
ruleorder: solve_teacher > train_students
ruleorder: solve_teacher > gather_students
ruleorder: solve_teacher > recover
ruleorder: solve_teacher > evaluate
