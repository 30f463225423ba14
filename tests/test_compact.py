"""workflows/compact.py: models a cached workflow keeps share their set of given fields where it is every
field, and nothing a caller sees changes."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.intake import Throttle
from domain.models import SampleOrder
from domain.status import TimelineEvent
from tests import factories as f
from workflows.compact import compact


def _event(text: str) -> TimelineEvent:
    return TimelineEvent(at=datetime(2026, 12, 1, tzinfo=UTC), stage="sampling", event="awaiting", text=text)


def test_models_given_every_field_share_one_set_and_stay_equal() -> None:
    a, b = _event("a"), _event("b")
    assert a.model_fields_set is not b.model_fields_set
    before = (a.model_dump(), a.model_fields_set.copy())
    compact([a, {"x": b}])
    assert a.model_fields_set is b.model_fields_set  # one set for the class
    assert (a.model_dump(), a.model_fields_set) == before
    a.text = "changed"  # a field already in the set: the shared set does not change
    assert b.model_fields_set == set(TimelineEvent.model_fields) and b.text == "b"


def test_nested_models_are_compacted_and_partial_ones_keep_their_own_set() -> None:
    order = SampleOrder.model_validate(f.order("offline_production"))
    other = SampleOrder.model_validate(f.order("offline_production"))
    dumped = order.model_dump(mode="json")
    compact(order)
    compact(other)
    assert order.model_dump(mode="json") == dumped
    for a, b in ((order, other), (order.product, other.product), (order.sampled_party, other.sampled_party)):
        if a.model_fields_set == set(type(a).model_fields):
            assert a.model_fields_set is b.model_fields_set, type(a).__name__
        else:  # given only some fields: its own set, so that a later assignment marks only this model
            assert a.model_fields_set is not b.model_fields_set, type(a).__name__
    throttle, fresh = Throttle(), Throttle()  # given no field
    compact([throttle, fresh])
    assert throttle.model_fields_set is not fresh.model_fields_set
    throttle.taken = 3
    assert throttle.model_fields_set == {"taken"} and fresh.model_fields_set == set()
