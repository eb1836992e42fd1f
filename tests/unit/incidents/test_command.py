from __future__ import annotations

from pathlib import Path

from streams.incidents.command import main

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "routes.yaml"


def test_check_routes_lists_routes_without_secrets(capsys):
    assert main(["--check-routes", "--routes", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "5 route(s) OK" in out and "slack to hooks.slack.com" in out
    assert "REPLACE_ME" not in out


def test_bad_routes_file_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "routes.yaml"
    bad.write_text("routes: [{name: x, target: {type: pager}}]\n")
    assert main(["--check-routes", "--routes", str(bad)]) == 2
    assert "route 'x': field 'target.type'" in capsys.readouterr().err
