"""Precision and recall per detector on the labelled synthetic corpus (targets from the issue).

The corpus is synthetic and written by the same team as the rules, so these figures are an
upper bound and a regression guard, not a claim about real-world accuracy.
"""

from collections import Counter

import pytest

from detectors import Fingerprinter, Scanner, load_rules
from detectors.corpus import labelled_corpus

TARGETS = {
    "vn_citizen_id": 0.97, "vn_phone": 0.97, "payment_card": 0.97, "vn_tax_code": 0.97,
    "vn_bank_account": 0.90, "vn_legacy_id": 0.90, "vn_passport": 0.90,
    "vn_health_insurance": 0.90, "email": 0.97,
}


@pytest.fixture(scope="module")
def scores():
    scanner = Scanner(load_rules(), Fingerprinter(b"test-key-0123456789abcdef"))
    tp, fp, fn = Counter(), Counter(), Counter()
    for doc in labelled_corpus(seed=11, documents=60):
        predicted = {(f.detector, f.start, f.end) for f in scanner.scan(doc.text)}
        gold = set(doc.labels)
        tp.update(d for d, _, _ in predicted & gold)
        fp.update(d for d, _, _ in predicted - gold)
        fn.update(d for d, _, _ in gold - predicted)
    return tp, fp, fn


@pytest.mark.parametrize("detector", sorted(TARGETS))
def test_f1_meets_target(scores, detector):
    tp, fp, fn = scores
    assert tp[detector] > 0, f"corpus has no {detector}"
    precision = tp[detector] / (tp[detector] + fp[detector])
    recall = tp[detector] / (tp[detector] + fn[detector])
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= TARGETS[detector], (detector, precision, recall)
