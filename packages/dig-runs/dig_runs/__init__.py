"""dig-runs: submit compiled DIG workflows to OSMO, watch them, fetch their outputs; every run recorded."""
