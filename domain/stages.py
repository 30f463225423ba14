"""Stages and verdicts of a sample. Their values are public: they show in the `Stage` and `Verdict`
search attributes and in every integrator's filter."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    SAMPLING = "sampling"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    TESTING = "testing"
    RETENTION = "retention"
    RESULT_NOTIFIED = "result_notified"
    OBJECTION_WINDOW = "objection_window"
    OBJECTION_REVIEW = "objection_review"
    RETEST = "retest"
    POST_HANDLING = "post_handling"
    DISPOSAL = "disposal"
    CLOSED = "closed"


class Verdict(StrEnum):
    PENDING = "pending"
    PASS = "pass"
    # A fail still open to objection: the verdict becomes FAIL once it is final.
    FAIL_PROVISIONAL = "fail_provisional"
    FAIL = "fail"
    REFUSED = "refused"  # 拒检: the party refused to be sampled


STAGE_TITLES: dict[Stage, str] = {
    Stage.SAMPLING: "抽样/买样 sampling",
    Stage.IN_TRANSIT: "寄送中 in transit",
    Stage.RECEIVED: "已接收 received",
    Stage.TESTING: "检验中 testing",
    Stage.RETENTION: "样品留存 retention",
    Stage.RESULT_NOTIFIED: "结果已通知 result notified",
    Stage.OBJECTION_WINDOW: "异议期 objection window",
    Stage.OBJECTION_REVIEW: "异议审查 objection review",
    Stage.RETEST: "复检 re-test",
    Stage.POST_HANDLING: "后处理 post handling",
    Stage.DISPOSAL: "样品处置 disposal",
    Stage.CLOSED: "已结束 closed",
}
