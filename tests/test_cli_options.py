"""The commands' options are declared once: the rules' options (help and default) come from the rules, every
setting of a run is an option of ``negmine mine``, and refilter and sweep offer what the library lets them change."""

from __future__ import annotations

import dataclasses

import typer

from negmine.cli.app import app
from negmine.cli.options import AS_MINED, NUMBERS, TUNING, shown
from negmine.rules.registry import OPTIONS
from negmine.run.stored import REFILTER_OPTIONS
from negmine.run.sweep import SWEEP_OPTIONS
from negmine.settings.config import MineConfig


def params(name: str) -> dict[str, object]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


def test_every_setting_is_an_option_of_mine_with_its_default() -> None:
    mine = params("mine")
    defaults = MineConfig()
    for field in dataclasses.fields(MineConfig):
        assert field.name in mine, f"--{field.name} is a setting but not an option of negmine mine"
        value = getattr(defaults, field.name)
        assert mine[field.name].default == (shown(value) if field.name in NUMBERS else value), field.name


def test_the_rules_options_say_what_the_rules_say() -> None:
    mine, refilter, sweep = params("mine"), params("refilter"), params("sweep")
    for name, option in OPTIONS.items():
        assert mine[name].help == option.help
        assert refilter[name].help == option.help + AS_MINED
        assert sweep[name].help.startswith(option.help[:-1]) and sweep[name].rich_help_panel == TUNING
        if option.kind == "bool":
            assert mine[name].default is option.default
        elif option.kind == "number":
            assert mine[name].default == option.default
        else:
            assert mine[name].default == shown(option.default)


def test_refilter_and_sweep_offer_what_a_stored_run_can_change() -> None:
    refilter, sweep = params("refilter"), params("sweep")
    assert set(REFILTER_OPTIONS) - set(refilter) == {"query_batch_size"}  # the output is the same whatever it is
    assert set(SWEEP_OPTIONS) == {n for n, p in sweep.items() if p.rich_help_panel == TUNING}
    for name in REFILTER_OPTIONS:
        if name in refilter and name != "allow_empty":
            assert refilter[name].default is None and refilter[name].help.endswith(AS_MINED), name
