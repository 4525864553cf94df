"""``dermassist-client demo --not-learnt``: the classes the served classifier has no training images of, which this
client cannot read from the served model (``dermassist demo`` reads them); none by default, each code checked."""
from __future__ import annotations

import pytest

from dermassist_client.cli import build_parser, main
from dermassist_client.config import class_codes
from dermassist_client.errors import ClientConfigError


def test_the_option_defaults_to_no_class_and_takes_codes_in_any_case_in_contract_order() -> None:
    assert build_parser().parse_args(["demo"]).not_learnt is None
    assert build_parser().parse_args(["demo", "--not-learnt", "scc", "AK"]).not_learnt == ["SCC", "AK"]
    assert build_parser().parse_args(["demo", "--not-learnt", "SCC", "--not-learnt", "VASC"]).not_learnt == ["SCC",
                                                                                                             "VASC"]
    assert class_codes(["SCC", "ak", "SCC"]) == ("AK", "SCC") and class_codes("scc") == ("SCC",) and class_codes([]) == ()


def test_an_unknown_code_is_a_usage_error_naming_the_codes_expected(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--not-learnt", "SCC", "KERATOSIS"])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("argument --not-learnt: 'KERATOSIS' is not a class code; expected one of AK, BCC, DF, MEL, "
            "NV, BKL, SCC, VASC: pass those codes only") in err
    with pytest.raises(ClientConfigError, match="not_learnt: 'X' is not a class code"):
        class_codes(["X"])


def test_the_help_says_none_by_default_and_that_dermassist_demo_fills_it_from_the_served_model() -> None:
    (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
    text = " ".join(sub.choices["demo"].format_help().split())
    assert "--not-learnt CODE [CODE ...]" in text and "(default: none, nothing is claimed)" in text
    assert "`dermassist demo` fills it from the served model" in text
