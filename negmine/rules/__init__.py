"""The rules that drop candidates: one module per rule, each declaring its status name, its options (their
defaults, checks and help), what it reads and its docs row, with its pure mask over a batch's values; the registry
(``negmine.rules.registry``) lists them in the order they run. Pure declarations and numpy functions: the lowest
layer of negmine but the errors, read by the settings (the options' defaults) and by every stage above.

numpy is imported inside the functions, so that ``negmine --help`` (which reads the options) does not load it.
"""
