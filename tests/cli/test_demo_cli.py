"""`edgefit demo --only`: every section can be named; an unknown one is one line and exit 2."""

from edgefit.cli.demo_cmd import SECTIONS
from edgefit.cli.main import main


def test_unknown_section_is_one_line(capsys):
    assert main(["demo", "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only 'nope': no such section; sections: profile, hardware, compress")
    assert err.count("\n") == 1


def test_every_section_has_a_demo_step():
    import importlib

    for module_name, _title in SECTIONS:
        assert callable(importlib.import_module(module_name).demo_section), module_name
