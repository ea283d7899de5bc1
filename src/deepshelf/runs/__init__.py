"""Training runs: `config` (what to train), `pipeline` (split, fit, evaluate, write), `artifacts` (run folders)."""
