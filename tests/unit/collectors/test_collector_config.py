from __future__ import annotations

from pathlib import Path

import pytest

from streams.collectors.config import CollectorConfigError, load_config

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "collectors"


@pytest.mark.parametrize("kind", ["paste", "forum", "telegram", "log"])
def test_sample_configs_load(kind):
    config = load_config(SAMPLES / f"{kind}.yaml")
    assert config.sources_for(kind)
    assert all(s.kind == kind for s in config.sources)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "state_dir: st\nsources:\n"
        "  - {name: tg, type: telegram_export, path: exports}\n"
        "  - {name: tail, type: file_tail, paths: [logs/*.log]}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "c.yaml")
    assert config.state_dir == tmp_path.resolve() / "st"
    assert config.sources[0].resolve_path("exports") == tmp_path.resolve() / "exports"


def test_kind_defaults(make_config):
    config = make_config(
        [
            {"name": "tg", "type": "telegram_export", "path": "x"},
            {"name": "tail", "type": "file_tail", "paths": ["x.log"]},
        ],
    )
    telegram, tail = config.sources
    assert telegram.feed == "forum" and telegram.kind == "telegram"
    assert telegram.dedupe.by_content and not tail.dedupe.by_content
    assert tail.feed == "log"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"name": "Bad Name", "type": "pastebin"}, "field 'name': must be a short slug"),
        ({"name": "https://x", "type": "pastebin"}, "field 'name'"),
        ({"name": "p", "type": "pastebn"}, "field 'type': must be one of"),
        ({"name": "p", "type": "pastebin", "lisitng_url": "x"}, "unknown field(s) lisitng_url"),
        ({"name": "p", "type": "paste_listing"}, "(p): field 'listing_url': is required"),
        (
            {"name": "p", "type": "paste_listing", "listing_url": "ftp://x/y", "fields": {}},
            "field 'listing_url': must be a http/https URL",
        ),
        (
            {"name": "p", "type": "paste_listing", "listing_url": "http://x/", "fields": {}},
            "field 'fields': must map item_id",
        ),
        (
            {
                "name": "p",
                "type": "paste_listing",
                "listing_url": "http://x/",
                "fields": {"item_id": "id"},
            },
            "field 'raw_url_template': is required",
        ),
        (
            {
                "name": "p",
                "type": "paste_listing",
                "listing_url": "http://x/",
                "fields": {"item_id": "id"},
                "raw_url_template": "http://x/{key}",
            },
            "placeholder '{key}' is unknown",
        ),
        ({"name": "p", "type": "pastebin", "max_content_bytes": 10**7}, "must be at most"),
        ({"name": "p", "type": "pastebin", "http": {"timeout_seconds": "x"}}, "must be a number"),
        ({"name": "p", "type": "pastebin", "http": {"proxy": "socks5://h:1"}}, "field 'proxy'"),
        (
            {
                "name": "f",
                "type": "forum_thread",
                "thread_urls": ["http://x/t"],
                "markup": "custom",
            },
            "must give at least 'post'",
        ),
        (
            {
                "name": "f",
                "type": "forum_thread",
                "thread_urls": ["http://x/t"],
                "markup": "custom",
                "selectors": {"post": "div > p"},
            },
            "unsupported selector part",
        ),
        ({"name": "s", "type": "syslog", "listen": ["udp://127.0.0.1"]}, "field 'listen'"),
        ({"name": "t", "type": "telegram_export"}, "field 'path': is required"),
        (
            {"name": "t", "type": "telegram_export", "path": "x", "export_utc_offset": "7"},
            "must look like +07:00",
        ),
        ({"name": "l", "type": "file_tail", "paths": ["x"], "encoding": "utf-9"}, "encoding"),
    ],
)
def test_errors_name_the_source_and_field(make_config, source, message):
    with pytest.raises(CollectorConfigError) as excinfo:
        make_config([source])
    assert message in str(excinfo.value)
    assert "sources[0]" in str(excinfo.value)


def test_duplicate_source_names_are_rejected(make_config):
    with pytest.raises(CollectorConfigError, match="used twice"):
        make_config([{"name": "p", "type": "pastebin"}] * 2)


def test_yaml_errors_give_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("state_dir: x\nsources: [\n", encoding="utf-8")
    with pytest.raises(CollectorConfigError, match="not valid YAML at line"):
        load_config(path)
