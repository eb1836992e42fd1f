from __future__ import annotations

import json
import random

from streams.es_schema import incident_mappings
from streams.incidents.correlate import (
    MAX_SIGHTINGS,
    IncidentState,
    alert_features,
    correlate,
    incident_document,
    incident_id_for,
)


def chain(make_alert, texts_sites):
    """Correlate alerts in order against everything seen so far (what the agent's tables do)."""
    incidents: dict[str, IncidentState] = {}
    results = []
    for i, (text, site) in enumerate(texts_sites):
        alert = make_alert(text, site=site, item_id=f"item{i}",
                           fetched_at=f"2025-01-0{1 + i % 9}T00:00:00Z")
        result = correlate(alert, list(incidents.values()))
        incidents[result.incident.incident_id] = result.incident
        results.append(result)
    return results


def test_first_alert_opens_an_incident_with_a_deterministic_id(make_alert, dumps):
    alert = make_alert(dumps.text(dumps.rows(1, 30)))
    result = correlate(alert, [])
    state = result.incident
    assert result.is_new and result.matched_by == "new" and not result.escalated
    assert state.incident_id == incident_id_for(alert["alert_id"])
    assert state.sightings_total == 1 and state.sites == ["pastebin.com"]
    assert state.counts == alert["counts"]
    assert state.fingerprints_count == alert["distinct_fingerprints"] == 60
    assert state.severity_rank >= alert["severity_rank"]
    assert state.alert_ids == [alert["alert_id"]]


def test_same_content_on_another_site_joins_and_escalates(make_alert, dumps):
    text = dumps.text(dumps.rows(2, 30))
    first, second = chain(make_alert, [(text, "pastebin.com"), (text, "forum.example.vn")])
    assert second.matched_by == "content" and not second.is_new
    state = second.incident
    assert state.incident_id == first.incident.incident_id
    assert state.sites == ["forum.example.vn", "pastebin.com"]
    assert len(state.sightings) == 2 and len(state.alert_ids) == 2
    assert state.severity_rank == min(4, first.incident.severity_rank + 1)
    assert second.escalated == (first.incident.severity_rank < 4)
    assert any("seen on 2 sites" in r for r in state.reasons)


def test_reformatted_repost_with_most_rows_joins_by_similarity(make_alert, dumps):
    rows = dumps.rows(3, 40)
    repost = rows[:36] + dumps.rows(33, 4)  # 72 of 80 identifiers shared: Jaccard 72/88 ≈ 0.82
    random.Random(0).shuffle(repost)
    original = dumps.text(rows)
    reworded = dumps.text(repost, header="full name;cccd;phone (fresh 2025)").replace(" | ", "; ")
    first, second = chain(make_alert, [(original, "pastebin.com"), (reworded, "t.me")])
    assert second.matched_by == "similarity"
    assert second.incident.incident_id == first.incident.incident_id
    assert 0.8 <= second.similarity < 1.0
    assert second.incident.fingerprints_count == 88  # union of both sets


def test_unrelated_dump_opens_its_own_incident(make_alert, dumps):
    first, second = chain(make_alert, [(dumps.text(dumps.rows(4, 30)), "a.com"),
                                       (dumps.text(dumps.rows(5, 30)), "a.com")])
    assert second.is_new and second.incident.incident_id != first.incident.incident_id


def test_overlap_below_threshold_stays_apart(make_alert, dumps):
    rows = dumps.rows(6, 40)
    half = rows[:20] + dumps.rows(66, 20)
    _, second = chain(make_alert, [(dumps.text(rows), "a.com"), (dumps.text(half), "b.com")])
    assert second.is_new


def test_redelivered_alert_changes_nothing(make_alert, dumps):
    alert = make_alert(dumps.text(dumps.rows(7, 10)))
    first = correlate(alert, [])
    again = correlate(alert, [first.incident])
    assert again.matched_by == "duplicate" and not again.is_new and not again.escalated
    assert again.incident.to_dict() == first.incident.to_dict()


def test_a_shared_hotline_is_not_a_leak(make_alert, dumps):
    rows = dumps.rows(8, 2)
    one = f"Lien he {rows[0][2]} de mua hang"
    other = f"Goi {rows[0][2]} hoac {rows[1][2]}"
    _, second = chain(make_alert, [(one, "a.com"), (other, "b.com")])
    assert second.is_new  # too few identifiers for similarity; different content
    assert not alert_features(make_alert(one)).band_keys


def test_growth_escalates(make_alert, dumps):
    rows = dumps.rows(9, 300)
    part = dumps.text(rows[:100])
    texts = [(part, "a.com"), (part + "\n" + dumps.text(rows[100:], header=""), "a.com")]
    # The second text shares only a third of the identifiers: it is a new incident unless the
    # first one is its content; check the growth rule on a state directly instead.
    first = chain(make_alert, texts[:1])[0].incident
    bigger = make_alert(texts[1][0], item_id="big")
    bigger["content_sha256"] = first.content_hashes[0]  # the same paste, edited in place
    grown = correlate(bigger, [first])
    assert grown.matched_by == "content"
    assert abs(grown.incident.fingerprints_count - 600) < 90  # KMV estimate above 256
    assert grown.escalated or first.severity_rank == 4
    assert any(r.startswith("grew from 200 to") for r in grown.incident.reasons)


def test_watchlist_hits_raise_severity(make_alert):
    alert = make_alert("Lien he 0912345678, 0987654321, 0903123456, 0977111222, 0912000111")
    plain = correlate(alert, []).incident
    marked = correlate(alert, [], watchlist_hits={"customers": 3}).incident
    assert marked.severity_rank >= max(3, plain.severity_rank)
    assert marked.watchlists == ["customers"] and marked.watchlist_hits == {"customers": 3}
    assert "3 identifier(s) on watch-list 'customers'" in marked.reasons
    bulk = correlate(alert, [], watchlist_hits={"customers": 150}).incident
    assert bulk.severity == "critical"


def test_five_sites_make_it_critical(make_alert, dumps):
    text = dumps.text(dumps.rows(10, 5))
    results = chain(make_alert, [(text, f"site{i}.vn") for i in range(5)])
    assert results[-1].incident.severity == "critical"
    assert any("wide spread" in r for r in results[-1].incident.reasons)


def test_keyword_watchlist_findings_do_not_make_posts_similar(make_alert, dumps):
    alert = make_alert(dumps.text(dumps.rows(11, 10)))
    brand = "f" * 64
    alert["fingerprints"] = [*alert["fingerprints"], brand]
    alert["findings"] = [*alert["findings"], {"detector": "brand_acme", "fingerprint": brand}]
    alert["watchlists"] = alert["keyword_watchlists"] = ["brand_acme"]
    assert alert_features(alert).fingerprints_n == 20
    state = correlate(alert, []).incident
    assert state.watchlists == ["brand_acme"] and state.severity_rank >= 2


def test_state_round_trips_and_stays_bounded(make_alert, dumps):
    text = dumps.text(dumps.rows(12, 20))
    state = correlate(make_alert(text), []).incident
    for i in range(MAX_SIGHTINGS + 50):
        alert = make_alert(text, site=f"s{i % 7}.vn", item_id=f"x{i}")
        state = correlate(alert, [state]).incident
    assert len(state.sightings) == MAX_SIGHTINGS
    assert state.sightings_total == MAX_SIGHTINGS + 51
    assert IncidentState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert len(json.dumps(state.to_dict())) < 200_000


def test_document_fits_the_mapping_and_carries_no_identifier(make_alert, dumps):
    rows = dumps.rows(13, 15)
    state = correlate(make_alert(dumps.text(rows)), []).incident
    doc = incident_document(state, updated_at="2025-01-01T00:00:00Z")
    mapped = set(incident_mappings()["properties"])
    assert mapped <= set(doc)
    assert "fingerprint_sample" not in doc and "notified" not in doc and "variants" not in doc
    blob = json.dumps(doc)
    for _, cid, phone in rows:
        assert cid not in blob and phone not in blob


def test_hits_marked_by_the_scan_worker_count_without_local_lists(make_alert, dumps):
    alert = make_alert(dumps.text(dumps.rows(14, 10)))
    alert["watchlists"] = ["customers"]
    alert["watchlist_hits"] = {"customers": 7}
    alert["keyword_watchlists"] = []
    state = correlate(alert, [], watchlist_hits={"customers": 5, "staff": 1}).incident
    assert state.watchlist_hits == {"customers": 7, "staff": 1}
    assert state.watchlists == ["customers", "staff"] and state.severity_rank >= 3
    assert not any("keyword" in r for r in state.reasons)
