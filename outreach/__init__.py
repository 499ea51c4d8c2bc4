"""Outreach: scores in, cases, tasks, contact attempts and outcomes out (see the outreach issue)."""
