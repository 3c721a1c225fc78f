"""Settings: every knob of a run in one frozen dataclass (its default and its validation), and TOML config
files. The lowest layer: it imports nothing else of negmine but the errors."""
