# One job per synthetic teacher (config key jobs.one_per_teacher), or per group of
# jobs.teachers_per_job teachers: each teacher's queries, every expansion's training,
# gathering, recovery and evaluation, teacher after teacher in one process, writing the
# same files as the per-step rules (those stay defined: digits teachers use them, and the
# rule order below makes these rules the ones that build a synthetic teacher's files). It
# saves a process start (about 3 s of imports) per step, and a group of teachers shares
# one (about 5 s more: torch's optimiser imports its compiler), which dominates a study of
# many small teachers on one machine.
#
# One teacher per job is one rule, solve_teacher, with the {teacher} wildcard. A group's
# outputs are named files of its teachers, and a rule's outputs cannot be a function of a
# wildcard, so each group is a rule of its own, solve_teacher_<k>; its log and benchmark
# file are named by its teachers joined with '+'.

TEACHER_GROUPS = teacher_groups(SYNTHETIC, config["jobs"]["teachers_per_job"])
PER_STEP_RULES = (
    "synthetic_teacher",
    "queries",
    "train_students",
    "gather_students",
    "recover",
    "evaluate",
)

for index, (group_name, members) in enumerate(TEACHER_GROUPS.items()):
    job_rule = "solve_teacher" if members is None else f"solve_teacher_{index}"

    rule:
        name:
            job_rule
        output:
            teacher=[directory(p) for p in group_files(rules.synthetic_teacher.output[0], members)],
            queries=group_files(rules.queries.output[0], members),
            seed_stores=[
                directory(p)
                for p in group_files(
                    rules.train_students.output[0],
                    members,
                    expansion=SYNTHETIC_EXPANSIONS,
                    seed=SEEDS,
                )
            ],
            students=[
                directory(p)
                for p in group_files(
                    rules.gather_students.output[0], members, expansion=SYNTHETIC_EXPANSIONS
                )
            ],
            stores=[
                directory(p)
                for p in group_files(
                    rules.recover.output.store,
                    members,
                    expansion=SYNTHETIC_EXPANSIONS,
                    recovery=RECOVERIES,
                )
            ],
            summaries=group_files(
                rules.recover.output.summary,
                members,
                expansion=SYNTHETIC_EXPANSIONS,
                recovery=RECOVERIES,
            ),
            metrics=group_files(
                rules.evaluate.output[0],
                members,
                expansion=SYNTHETIC_EXPANSIONS,
                recovery=RECOVERIES,
            ),
            train_benchmarks=group_files(
                rules.train_students.benchmark,
                members,
                expansion=SYNTHETIC_EXPANSIONS,
                seed=SEEDS,
            ),
            recover_benchmarks=group_files(
                rules.recover.benchmark,
                members,
                expansion=SYNTHETIC_EXPANSIONS,
                recovery=RECOVERIES,
            ),
        log:
            f"results/{{study}}/logs/solve_teacher/{group_name}.log",
        benchmark:
            f"results/{{study}}/benchmarks/solve_teacher/{group_name}.tsv"
        wildcard_constraints:
            teacher=alternatives(SYNTHETIC),
        conda:
            "../../envs/study.yaml"
        threads: 1
        resources:
            gpu=1,
            mem_mb=4000,
            runtime=240 * (len(members) if members else 1),
        params:
            plans=functools.partial(group_plans, members),
            evaluation=config["evaluation"],
            n_students=config["students"]["per_job"],
            train=config["students"]["train"],
        script:
            "../scripts/solve_teacher.py"

    # The per-step rules make the same files: this rule is the one that does.
    for step in PER_STEP_RULES:
        workflow.ruleorder(job_rule, step)
