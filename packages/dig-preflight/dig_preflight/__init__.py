"""Pre-submit checks for DIG runs: storage artifacts, credentials and the OSMO pod template."""
