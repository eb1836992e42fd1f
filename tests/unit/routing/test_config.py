from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.routing.config import RouteConfigError, load_routes, parse_routes

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "routes.yaml"


def test_sample_routes_file_loads():
    config = load_routes(SAMPLE)
    assert config.names == ["soc-slack", "customers-owner-email", "fraud-teams",
                            "oncall-telegram", "soar-webhook"]
    email = config.routes[1]
    assert email.target.recipients == ("dpo@example.vn", "security@example.vn")
    assert email.rate_limit.burst == 3 and config.routes[0].rate_limit.burst == 10
    assert config.routes[4].retry.attempts == 6


def test_no_file_means_no_routes():
    assert load_routes(None).routes == ()


def test_secrets_come_from_files_and_stay_out_of_repr(tmp_path):
    (tmp_path / "token").write_text("123:SECRET\n")
    config = parse_routes({"routes": [{"name": "tg", "target": {
        "type": "telegram", "chat_id": 42, "token_file": "token"}}]}, "r.yaml",
        base_dir=tmp_path)
    target = config.routes[0].target
    assert target.token == "123:SECRET" and target.chat_id == "42"
    assert "SECRET" not in repr(config) and "SECRET" not in target.describe()


def _error(document) -> str:
    with pytest.raises(RouteConfigError) as info:
        parse_routes(yaml.safe_load(document), "routes.yaml")
    return str(info.value)


@pytest.mark.parametrize(("document", "expected"), [
    ("routes: [{name: a, target: {type: pager}}]", "route 'a': field 'target.type'"),
    ("routes: [{name: a, target: {type: slack}}]", "route 'a' target: field 'url'"),
    ("routes: [{name: a, match: {min_severity: huge}, target: {type: slack, url: 'http://h'}}]",
     "route 'a' match: field 'min_severity'"),
    ("routes: [{name: 'Bad Name', target: {type: slack, url: 'http://h'}}]", "field 'name'"),
    ("routes: [{name: a, target: {type: slack, url: 'http://h'}},"
     " {name: a, target: {type: slack, url: 'http://h'}}]", "duplicate route name"),
    ("routes: [{name: a, colour: red, target: {type: slack, url: 'http://h'}}]",
     "unknown field(s) colour"),
    ("routes: [{name: a, target: {type: email, smtp_host: h, from: x@y.vn, to: []}}]",
     "field 'to'"),
    ("routes: [{name: a, target: {type: telegram, chat_id: 1}}]", "'token' or 'token_file'"),
    ("routes: [{name: a, target: {type: slack, url: 'http://h'}, rate_limit: {burst: 0}}]",
     "rate_limit.burst"),
    ("routes: [{name: a, target: {type: webhook, url: 'h', url_file: f}}]", "not both"),
])
def test_errors_name_the_route_and_the_field(document, expected):
    message = _error(document)
    assert message.startswith("routes.yaml")
    assert expected in message


def test_criteria(make_incident):
    config = parse_routes(yaml.safe_load("""
routes:
  - {name: crit, match: {min_severity: critical}, target: {type: slack, url: 'http://h'}}
  - {name: phones, match: {detectors: [vn_phone]}, target: {type: slack, url: 'http://h'}}
  - {name: anylist, match: {watchlists: ['*']}, target: {type: slack, url: 'http://h'}}
  - {name: staff, match: {watchlists: [staff]}, target: {type: slack, url: 'http://h'}}
  - {name: forums, match: {feeds: [forum]}, target: {type: slack, url: 'http://h'}}
  - {name: vn, match: {sites: ['*.vn']}, target: {type: slack, url: 'http://h'}}
"""), "r")
    def taken(**kw):
        return [r.name for r in config.routes if r.criteria.matches(make_incident(**kw))]
    assert taken() == ["phones"]
    assert taken(severity_rank=4, watchlists=["staff"], watchlist_hits={"staff": 1},
                 sites=["Forum.Example.VN"]) == ["crit", "phones", "anylist", "staff", "vn"]
    assert taken(detectors=["email"], feeds=["forum"]) == ["forums"]
