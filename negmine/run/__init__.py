"""Running: the plan of a run (once), its query batches through the stages in order (one list), the engines
that run the batches (here, or on a Ray cluster), stored runs (a candidates file read back: refilter and sweep),
and the public ``mine()``, ``refilter()``, ``build_index()``."""
