"""dig compiler: compose Hydra config groups, validate, render and emit canonical OSMO workflows."""
