"""Verdicts on recorded real-world request samples, and the burst rule."""

import json
from pathlib import Path

import pytest

from service.clicks.models import Verdict
from service.clicks.verdicts import BURST_WINDOW, BurstDetector, Reason, classify

SAMPLES = json.loads((Path(__file__).parent / "data" / "click_samples.json").read_text())


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["who"] for s in SAMPLES])
def test_recorded_samples_get_the_right_verdict(sample):
    got = classify(user_agent=sample["ua"], ip=sample["ip"], headers=sample["headers"])
    assert got.verdict is Verdict(sample["verdict"]), got
    for reason in sample.get("reasons", []):
        assert reason in got.reasons
    if got.verdict is Verdict.human:
        assert got.reasons == ()


def test_samples_cover_every_verdict():
    assert {s["verdict"] for s in SAMPLES} == {"human", "scanner", "crawler"}


def test_a_burst_makes_a_browser_a_scanner():
    ua = SAMPLES[0]["ua"]
    assert classify(user_agent=ua, ip="86.1.1.1", burst=True).reasons == ("burst",)
    assert classify(user_agent=ua, ip="86.1.1.1", burst=True).verdict is Verdict.scanner


def test_an_image_proxy_is_noted_on_image_loads_without_changing_the_verdict():
    ua = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    image = classify(user_agent=ua, ip="86.1.1.1", image_load=True)
    assert image.verdict is Verdict.human and image.reasons == (Reason.image_proxy,)
    assert image.reason_text == "image_proxy"
    assert classify(user_agent=ua, ip="86.1.1.1").reasons == ()  # a click through the same agent: no note
    scripted = classify(user_agent="curl/8.5 GoogleImageProxy", ip=None, image_load=True)
    assert scripted.verdict is Verdict.scanner and scripted.reason_text == "ua_script,image_proxy"


def test_burst_detector_flags_a_second_link_of_one_message_within_the_window():
    d = BurstDetector()
    assert d.hit(("v", "sig", 1, 7), link_id=1, now=100.0) == []
    assert d.hit(("v", "sig", 1, 7), link_id=1, now=100.5) == []  # the same link again is not a burst
    assert d.hit(("v", "sig", 1, 7), link_id=2, now=101.0) == [1]
    assert d.hit(("v", "sig", 1, 8), link_id=3, now=101.1) == []  # another employee's signature
    assert d.hit(("w", "sig", 1, 7), link_id=3, now=101.2) == []  # another visitor
    assert d.hit(("v", "sig", 1, 7), link_id=3, now=101.0 + BURST_WINDOW + 0.1) == []  # later: a person
