"""The pipeline's stages: one module per stage of dvc.yaml, each with a `main()` that `kdscale <stage>` runs.

A stage imports the shared pieces of `kdscale` (config, data, engines, adherence, statistics, tracking)
and never another stage; no shared piece imports a stage (tests/test_dvc_deps.py checks both).
"""
