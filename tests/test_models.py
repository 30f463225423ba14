"""Sample orders as an integrator sees them: the examples validate, bad orders are refused naming the field,
and unified social credit codes are checked by their check character. No Temporal server needed."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.credit_code import ALPHABET, check_character, credit_code_problem, with_check_character
from domain.models import Channel, SampleOrder, sample_no_from_workflow_id, workflow_id_for
from starter.client import OrderError, parse_order

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "orders"
ORDER_FILES = sorted(EXAMPLES.glob("*.json"))
BATCH_LINES = [
    line for line in (EXAMPLES / "batch.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()
]


def load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(OrderError) as info:
        parse_order(raw)
    assert info.value.problems, "an OrderError must name at least one problem"
    return info.value.problems


# --- the examples ----------------------------------------------------------------------------------


def test_there_are_examples() -> None:
    assert len(ORDER_FILES) >= 5
    assert len(BATCH_LINES) >= 2


@pytest.mark.parametrize("path", ORDER_FILES, ids=lambda p: p.stem)
def test_example_order_validates(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    order = parse_order(raw)
    assert order.sample_no == raw["sample_no"]
    assert order.channel.value == raw["channel"]
    assert order.workflow_id == f"sample-{raw['sample_no']}"


@pytest.mark.parametrize("line", BATCH_LINES, ids=lambda s: json.loads(s)["sample_no"])
def test_batch_line_validates(line: str) -> None:
    order = parse_order(json.loads(line))
    assert order.channel is Channel.ONLINE


def test_batch_sample_numbers_are_distinct() -> None:
    numbers = [json.loads(line)["sample_no"] for line in BATCH_LINES]
    assert len(set(numbers)) == len(numbers)


def test_parse_order_passes_a_model_through() -> None:
    order = SampleOrder.model_validate(load("online"))
    assert parse_order(order) is order


def test_defaults_of_an_order() -> None:
    order = parse_order(load("offline_production"))
    assert order.testing_working_days == 20
    assert order.time_scale == 1.0
    assert order.platform is None
    assert order.labelled_producer is None


def test_whitespace_around_strings_is_stripped() -> None:
    raw = load("online")
    raw["sampled_party"]["credit_code"] = f"  {raw['sampled_party']['credit_code']} "
    raw["sample_no"] = " ZJ2025-ON-0003 "
    order = parse_order(raw)
    assert order.sample_no == "ZJ2025-ON-0003"
    assert credit_code_problem(order.sampled_party.credit_code) is None


# --- the JSON schema -------------------------------------------------------------------------------


def test_schema_names_required_fields() -> None:
    schema = SampleOrder.model_json_schema()
    required = set(schema["required"])
    assert {"sample_no", "plan_id", "task_type", "channel", "region", "product", "sampled_party",
            "inspection_agency"} <= required
    for optional in ("platform", "labelled_producer", "time_scale", "follows_sample_no", "testing_working_days"):
        assert optional not in required
    assert schema["additionalProperties"] is False
    product = schema["$defs"]["Product"]
    assert {"name", "classification_code", "brand", "model"} <= set(product["required"])
    party = schema["$defs"]["Party"]
    assert {"name", "credit_code", "region"} <= set(party["required"])


def test_schema_documents_patterns_and_channels() -> None:
    schema = SampleOrder.model_json_schema()
    assert schema["properties"]["sample_no"]["pattern"]
    assert schema["properties"]["region"]["pattern"] == r"^[0-9]{6}$"
    assert set(schema["$defs"]["Channel"]["enum"]) == {c.value for c in Channel}


# --- bad orders are refused with the field named ---------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


def _wrong_check_character(raw: dict[str, Any]) -> None:
    code = raw["sampled_party"]["credit_code"]
    wrong = next(ch for ch in ALPHABET if ch != code[-1])
    raw["sampled_party"]["credit_code"] = code[:-1] + wrong


BAD_ORDERS: list[tuple[str, str, Mutation, str, str]] = [
    # id, example, mutation, field named, words in the message
    ("wrong-check-character", "online", _wrong_check_character, "sampled_party.credit_code", "check character is"),
    ("credit-code-letter-I", "online", _set("sampled_party.credit_code", "92330782MA2K1LMNIX"),
     "sampled_party.credit_code", "outside the code alphabet: I"),
    ("credit-code-letter-O", "online", _set("labelled_producer.credit_code", "91440300MA5G7HJO8D"),
     "labelled_producer.credit_code", "outside the code alphabet: O"),
    ("credit-code-letter-S", "offline_production", _set("sampled_party.credit_code", "91330100MA2SBCDE1R"),
     "sampled_party.credit_code", "outside the code alphabet: S"),
    ("credit-code-letter-V", "offline_production", _set("sampled_party.credit_code", "91330100MA2VBCDE1R"),
     "sampled_party.credit_code", "outside the code alphabet: V"),
    ("credit-code-letter-Z", "offline_production", _set("sampled_party.credit_code", "91330100MA2ZBCDE1R"),
     "sampled_party.credit_code", "outside the code alphabet: Z"),
    ("credit-code-too-short", "offline_production", _set("sampled_party.credit_code", "91330100MA2ABCDE1"),
     "sampled_party.credit_code", "18 characters"),
    ("region-5-digits", "offline_production", _set("region", "33010"), "region", "pattern"),
    ("region-letters", "offline_production", _set("region", "33010A"), "region", "pattern"),
    ("party-region-7-digits", "offline_production", _set("sampled_party.region", "3301060"),
     "sampled_party.region", "pattern"),
    ("extra-field-typo", "offline_production", _set("sampel_no", "ZJ2025-PR-0001"), "sampel_no", "Extra inputs"),
    ("extra-product-field", "offline_production", _set("product.colour", "red"), "product.colour", "Extra inputs"),
    ("online-without-platform", "online", _drop("platform"), "platform", "required for channel online"),
    ("livestream-without-room", "livestream", _drop("platform.livestream_room"), "platform.livestream_room",
     "required for channel livestream"),
    ("livestream-without-platform", "livestream", _drop("platform"), "platform", "required for channel livestream"),
    ("follow-up-without-earlier-sample", "offline_production", _set("task_type", "follow_up"),
     "follows_sample_no", "required for task type follow_up"),
    ("negative-price", "offline_production", _set("product.price", "-0.01"), "product.price", "greater than"),
    ("time-scale-below-1", "offline_production", _set("time_scale", 0.5), "time_scale", "greater than or equal to 1"),
    ("time-scale-zero", "offline_production", _set("time_scale", 0), "time_scale", "greater than or equal to 1"),
    ("sample-no-space", "offline_production", _set("sample_no", "ZJ 2025 01"), "sample_no", "pattern"),
    ("sample-no-slash", "offline_production", _set("sample_no", "ZJ2025/01"), "sample_no", "pattern"),
    ("sample-no-leading-dash", "offline_production", _set("sample_no", "-ZJ2025"), "sample_no", "pattern"),
    ("sample-no-too-short", "offline_production", _set("sample_no", "Z1"), "sample_no", "pattern"),
    ("missing-brand", "offline_production", _drop("product.brand"), "product.brand", "Field required"),
    ("empty-brand", "offline_production", _set("product.brand", "  "), "product.brand", "at least 1 character"),
    ("unknown-channel", "offline_production", _set("channel", "mail_order"), "channel", "Input should be"),
    ("unknown-task-type", "offline_production", _set("task_type", "surprise"), "task_type", "Input should be"),
    ("bad-classification-code", "offline_production", _set("product.classification_code", "11-04"),
     "product.classification_code", "pattern"),
    ("working-days-zero", "offline_production", _set("testing_working_days", 0), "testing_working_days",
     "greater than or equal to 1"),
    ("missing-agency", "offline_production", _drop("inspection_agency"), "inspection_agency", "Field required"),
]


@pytest.mark.parametrize(("example", "mutate", "field", "words"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_ORDERS])
def test_bad_order_is_refused_naming_the_field(example: str, mutate: Mutation, field: str, words: str) -> None:
    raw = load(example)
    mutate(raw)
    problems = problems_of(raw)
    named = [p for p in problems if p.startswith(f"{field}: ")]
    assert named, f"no problem names {field}: {problems}"
    assert any(words in p for p in named), f"{words!r} not in {named}"


def test_wrong_check_character_message_says_which_and_expected() -> None:
    raw = load("offline_production")
    good = raw["sampled_party"]["credit_code"]
    wrong = "0" if good[-1] != "0" else "1"
    raw["sampled_party"]["credit_code"] = good[:-1] + wrong
    problems = problems_of(raw)
    assert f"sampled_party.credit_code: not a unified social credit code: check character is {wrong}, " \
           f"expected {good[-1]}" in problems


def test_value_error_prefix_is_removed() -> None:
    raw = load("online")
    del raw["platform"]
    for p in problems_of(raw):
        assert "Value error" not in p


def test_every_problem_is_reported_not_just_the_first() -> None:
    raw = load("offline_production")
    raw["region"] = "1"
    raw["product"]["price"] = "-1"
    raw["sampel_no"] = "x"
    problems = problems_of(raw)
    for field in ("region", "product.price", "sampel_no"):
        assert any(p.startswith(f"{field}: ") for p in problems), problems


def test_order_error_keeps_the_sample_no() -> None:
    raw = load("offline_production")
    raw["region"] = "1"
    with pytest.raises(OrderError) as info:
        parse_order(raw)
    assert info.value.sample_no == "ZJ2025-PR-0001"
    assert "region" in str(info.value)


@pytest.mark.parametrize("raw", [None, "an order", 42, ["ZJ2025-PR-0001"]], ids=repr)
def test_non_object_order_is_refused(raw: Any) -> None:
    with pytest.raises(OrderError) as info:
        parse_order(raw)
    assert info.value.sample_no is None
    assert info.value.problems


def test_follow_up_with_earlier_sample_is_accepted() -> None:
    raw = load("offline_production")
    raw["task_type"] = "follow_up"
    raw["follows_sample_no"] = "ZJ2024-PR-0099"
    assert parse_order(raw).follows_sample_no == "ZJ2024-PR-0099"


def test_offline_order_may_carry_no_platform_and_zero_price() -> None:
    raw = load("offline_circulation")
    raw["product"]["price"] = "0"
    order = parse_order(raw)
    assert order.platform is None
    assert order.product.price == 0


@pytest.mark.parametrize("region", ["３３０１００", "٣٣٠١٠٠"], ids=["fullwidth", "arabic-indic"])
def test_region_must_be_ascii_digits(region: str) -> None:
    raw = load("offline_production")
    raw["region"] = region
    problems = problems_of(raw)
    assert any(p.startswith("region: ") for p in problems)


# --- channel, summary, workflow id -----------------------------------------------------------------


@pytest.mark.parametrize(("channel", "purchased"), [
    (Channel.OFFLINE_PRODUCTION, False),
    (Channel.OFFLINE_CIRCULATION, False),
    (Channel.ONLINE, True),
    (Channel.LIVESTREAM, True),
])
def test_channel_purchased(channel: Channel, purchased: bool) -> None:
    assert channel.purchased is purchased


@pytest.mark.parametrize("path", ORDER_FILES, ids=lambda p: p.stem)
def test_order_purchased_follows_its_channel(path: Path) -> None:
    order = parse_order(json.loads(path.read_text(encoding="utf-8")))
    assert order.purchased is (order.channel in (Channel.ONLINE, Channel.LIVESTREAM))


@pytest.mark.parametrize("path", ORDER_FILES, ids=lambda p: p.stem)
def test_summary_is_one_line_naming_sample_product_and_channel(path: Path) -> None:
    order = parse_order(json.loads(path.read_text(encoding="utf-8")))
    summary = order.summary
    assert "\n" not in summary
    assert order.sample_no in summary
    assert order.product.name in summary
    assert order.channel.value in summary
    assert order.sampled_party.region in summary


def test_summary_names_the_shop_online_and_the_party_offline() -> None:
    online = parse_order(load("online"))
    assert online.platform is not None
    assert online.platform.shop_name in online.summary
    offline = parse_order(load("offline_production"))
    assert offline.sampled_party.name in offline.summary


def test_workflow_id_for() -> None:
    assert workflow_id_for("ZJ2025-PR-0001") == "sample-ZJ2025-PR-0001"
    order = parse_order(load("offline_production"))
    assert order.workflow_id == workflow_id_for(order.sample_no)
    assert sample_no_from_workflow_id(order.workflow_id) == order.sample_no
    # only the prefix is removed
    assert sample_no_from_workflow_id("sample-sample-1") == "sample-1"


# --- unified social credit code ----------------------------------------------------------------------

BODIES = [
    "91330100MA2ABCDE1",
    "92330782MA2K1LMN3",
    "91440300MA5G7HJK8",
    "11100000000013127",
    "00000000000000000",
    "YYYYYYYYYYYYYYYYY",
    "5133010034567890W",
]


@pytest.mark.parametrize("body", BODIES)
def test_with_check_character_round_trips(body: str) -> None:
    code = with_check_character(body)
    assert len(code) == 18
    assert code[:17] == body
    assert code[17] in ALPHABET
    assert code[17] == check_character(body)
    assert credit_code_problem(code) is None


def test_example_codes_are_valid() -> None:
    for path in ORDER_FILES:
        raw = json.loads(path.read_text(encoding="utf-8"))
        for party in ("sampled_party", "labelled_producer"):
            if party in raw:
                assert credit_code_problem(raw[party]["credit_code"]) is None, (path.name, party)


def test_published_code_is_valid() -> None:
    # The code quoted as the example in explanations of GB 32100-2015.
    assert credit_code_problem("91350100M000100Y43") is None
    assert credit_code_problem("91350100M000100Y44") == "check character is 4, expected 3"


def test_alphabet_leaves_out_misreadable_letters() -> None:
    assert len(ALPHABET) == 31
    for letter in "IOSVZ":
        assert letter not in ALPHABET


def test_length_and_alphabet_problems() -> None:
    assert credit_code_problem("") == "must be 18 characters, got 0"
    assert credit_code_problem("91350100M000100Y4") == "must be 18 characters, got 17"
    assert credit_code_problem("91350100M000100Y433") == "must be 18 characters, got 19"
    assert credit_code_problem("91350100m000100y43") == "has characters outside the code alphabet: my"
    assert credit_code_problem("9135010OM000100Z43") == "has characters outside the code alphabet: OZ"


@pytest.mark.parametrize("body", BODIES[:3] + ["91350100M000100Y4"])
def test_any_single_character_change_is_caught(body: str) -> None:
    code = with_check_character(body)
    assert credit_code_problem(code) is None
    for pos in range(18):
        for ch in ALPHABET:
            if ch == code[pos]:
                continue
            changed = code[:pos] + ch + code[pos + 1:]
            problem = credit_code_problem(changed)
            assert problem is not None, f"{changed} (position {pos}) passed"
            assert problem.startswith("check character is "), problem


@pytest.mark.parametrize("body", BODIES[:3])
def test_swapping_adjacent_characters_is_caught(body: str) -> None:
    code = with_check_character(body)
    for pos in range(16):  # within the body
        if code[pos] == code[pos + 1]:
            continue
        swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2:]
        assert credit_code_problem(swapped) is not None, f"{swapped} (swap at {pos}) passed"


def test_order_with_a_computed_code_validates() -> None:
    raw = load("offline_production")
    raw["sampled_party"]["credit_code"] = with_check_character("91330106MA28XYW12")
    assert parse_order(copy.deepcopy(raw)).sampled_party.credit_code.startswith("91330106MA28XYW12")


# --- bounds: every accepted order can be stored (domain/bounds.py) ----------------------------------------

TEXT_FIELDS = ["plan_id", "product.name", "product.brand", "product.batch", "product.ccc_certificate",
               "sampled_party.name", "labelled_producer.name", "platform.shop_name", "platform.listing_id",
               "platform.listing_url", "inspection_agency.name", "inspection_agency.code"]


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize(("bad", "words"), [
    ("电源\x00", "must not contain NUL characters"),
    ("电源\ud800", "Input should be a valid string"),
    ("长" * 5000, "String should have at most"),
], ids=["nul", "lone-surrogate", "too-long"])
def test_unstorable_text_is_refused_naming_the_field(field: str, bad: str, words: str) -> None:
    raw = load("online")
    _set(field, bad)(raw)
    problems = problems_of(raw)
    assert any(p.startswith(f"{field}: ") and words in p for p in problems), problems
    assert bad not in str(problems) and "长" * 50 not in str(problems)


@pytest.mark.parametrize(("field", "value"), [
    ("sampled_party.address", "浙江省杭州市\x00"),
    ("sampled_party.contact", "x" * 201),
    ("follows_sample_no", "a" * 101),
    ("platform.livestream_room", "\x00"),
])
def test_optional_text_is_bounded_too(field: str, value: str) -> None:
    raw = load("online")
    _set(field, value)(raw)
    assert any(p.startswith(f"{field}: ") for p in problems_of(raw))


@pytest.mark.parametrize(("price", "ok"), [
    ("89.90", True), ("0", True), ("10000000000", True), ("89.900", True),
    ("10000000000.01", False), ("1e11", False), ("89.999", False), ("NaN", False), ("Infinity", False),
    (1e300, False),
])
def test_price_is_money(price: Any, ok: bool) -> None:
    raw = load("online")
    raw["product"]["price"] = price
    if ok:
        assert parse_order(raw).product.price is not None
    else:
        assert any(p.startswith("product.price: ") for p in problems_of(raw))


@pytest.mark.parametrize(("day", "ok"), [
    ("2000-01-01", True), ("2025-10-11", True), ("2100-12-31", True), ("1999-12-31", False),
    ("2101-01-01", False), ("9999-12-31", False),
])
def test_ordered_on_lies_within_the_century(day: str, ok: bool) -> None:
    raw = load("online")
    raw["ordered_on"] = day
    if ok:
        assert str(parse_order(raw).ordered_on) == day
    else:
        assert "ordered_on: must lie between 2000-01-01 and 2100-12-31" in problems_of(raw)


def test_many_problems_stay_within_300_characters() -> None:
    raw = load("online")
    for i in range(200):
        raw[f"extra_field_{i}"] = i
    with pytest.raises(OrderError) as info:
        parse_order(raw)
    assert len(str(info.value)) <= 300
    assert info.value.problems[-1].startswith("and ") and info.value.problems[-1].endswith(" more")


def test_a_long_unknown_key_is_named_but_clipped() -> None:
    raw = load("online")
    raw["k" * 100_000] = 1
    raw["product"]["颜色\x00"] = "red"
    problems = problems_of(raw)
    assert any(p.startswith("'kkkkkkkkkkkkkkkkkkkk…': Extra inputs") for p in problems), problems
    assert any(p.startswith("product.'颜色\\x00': Extra inputs") for p in problems), problems
    assert len(str(problems)) < 400


@pytest.mark.parametrize("sample_no", ["x" * 10_000, "ZJ 2025", 42, None, "\ud800abc"])
def test_order_error_never_carries_a_malformed_sample_no(sample_no: Any) -> None:
    raw = load("online")
    raw["sample_no"] = sample_no
    with pytest.raises(OrderError) as info:
        parse_order(raw)
    assert info.value.sample_no is None


@pytest.mark.parametrize(("raw", "words"), [
    (None, "null"), ([], "an array"), ("order", "a string"), (3.5, "a number"), (True, "a boolean"),
])
def test_non_object_order_says_what_it_got(raw: Any, words: str) -> None:
    assert problems_of(raw) == [f"input: an order must be a JSON object, not {words}"]
