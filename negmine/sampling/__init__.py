"""Sampling: the order in which each query-positive pair considers its candidates (top, seeded random,
SimANS), lazy selection (the judge scores candidates only as far as the walk needs), and the picks as a
Selection."""
