"""One run as typed stages: each takes and returns frozen dataclasses.

    load_task -> TaskData                      (stages.task)
    load_backbone -> Backbone                  (stages.backbone)
    id_sample_size, estimate_profile -> ProfileResult   (stages.profile)
    make_plan -> PlanResult                    (stages.plan)
    plan_stages -> Prologue                    (stages.prologue: the above from check_config,
                                                for gelora-train and gelora-plan alike)
    fit_and_test(FitSettings, ...) -> FitResult   (stages.fit)
    build_record(...) -> RunRecord             (stages.record; gelora.record: results.json's schema)

``gelora.pipeline.run`` calls them in this order; ``experiments/budget_table.py`` and the tests
call single stages. Stages do not call each other, but for the prologue, which calls the
stages up to the plan.
"""
