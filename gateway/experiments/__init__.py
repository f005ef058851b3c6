"""Experiments: A/B splits and canary roll-outs (assignment, canary state, outcome metrics),
shadow-pair comparisons and the statistics behind the admin reports."""
