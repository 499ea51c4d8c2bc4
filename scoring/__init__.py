"""Risk scoring: stored signals in, risk scores and reasons out (see the scoring issue)."""
