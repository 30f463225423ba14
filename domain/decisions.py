"""Human decisions: their kinds and outcomes, who may make them (the role matrix), and their payloads.

One model for every decision, whether it arrives as a signal or as an update; `decision_problem` is the
single validation both paths use.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.bounds import (
    MAX_EVIDENCE,
    MAX_FAILED_ITEMS,
    MAX_LEADS,
    MAX_LIST,
    MAX_MESSAGE,
    Choice,
    Code,
    Count,
    Data,
    Day,
    MaybeCode,
    MaybeName,
    Moment,
    Money,
    Name,
    RequiredText,
    Text,
    Url,
    error_lines,
    quoted,
    text,
    within,
)

Id = Annotated[str, text(128, min_length=1)]


class Role(StrEnum):
    SAMPLER = "sampler"  # 抽样人员 (also the anonymous buyer online)
    LAB = "lab"  # 承检机构
    CASE_OFFICER = "case_officer"  # 产品监管处 case officer
    ENFORCEMENT = "enforcement"  # 执法稽查
    CREDIT_OFFICER = "credit_officer"  # 信用监管
    ONLINE_OFFICER = "online_officer"  # 网监
    ENTERPRISE = "enterprise"  # the sampled party or labelled producer acting for itself
    CERTIFICATION_BODY = "certification_body"  # CCC 认证机构
    PLATFORM = "platform"  # e-commerce or livestream platform operator
    PUBLIC_SECURITY = "public_security"  # 公安机关, receives criminal transfers


class DecisionKind(StrEnum):
    SAMPLING_RECORD = "sampling_record"  # sampling done and sealed (or bought and unboxed), or refused
    SAMPLE_RECEIPT = "sample_receipt"  # the lab checks seal and integrity on arrival
    LAB_REPORT = "lab_report"
    RESULT_DELIVERY = "result_delivery"  # the result notice reached the party (送达): starts the objection window
    PRODUCER_CONFIRMATION = "producer_confirmation"  # labelled producer confirms or denies the product
    OBJECTION = "objection"  # 异议/复检申请
    OBJECTION_REVIEW = "objection_review"  # accept or reject the objection
    RETEST_REPORT = "retest_report"
    DISPOSAL = "disposal"  # return or dispose of the sample
    # post-handling branches
    RECTIFICATION_EXTENSION = "rectification_extension"  # retired: 延期整改 of runs before Order 18 handling
    RECTIFICATION_REPORT = "rectification_report"  # the firm's 整改报告
    RECTIFICATION_REVIEW = "rectification_review"  # retired: 整改复查 of runs before Order 18 handling
    RE_INSPECTION = "re_inspection"  # 复查 (Order 18 Art. 47-49): pass or fail, on a sample the party gives free
    PROVINCIAL_ANNOUNCEMENT = "provincial_announcement"  # 省级公告 of a failed 复查 (Art. 47), with its date
    SUSPENSION_ORDER = "suspension_order"  # 责令停业，限期整顿 (Art. 48; 产品质量法 Art. 17), with its period
    CREDIT_REPAIR_APPLICATION = "credit_repair_application"  # 信用修复申请
    CREDIT_REPAIR_ACCEPTANCE = "credit_repair_acceptance"  # 受理 (2 working days)
    CREDIT_REPAIR_REVIEW = "credit_repair_review"  # 修复决定 (15 working days)
    SERIOUS_DISHONESTY_REVIEW = "serious_dishonesty_review"  # 严重失信名单 proposal
    CASE_FILING = "case_filing"  # 立案 or not, or extension with approval
    CASE_OUTCOME = "case_outcome"  # penalty, no penalty, extension, or suspected crime
    CRIME_TRANSFER_DECISION = "crime_transfer_decision"  # 移送 within 3 days
    CRIME_TRANSFER_RECEIPT = "crime_transfer_receipt"  # 公安 receipt within 24 hours
    DEFECT_ASSESSMENT = "defect_assessment"  # 缺陷研判
    RECALL_DECISION = "recall_decision"  # voluntary or ordered (责令召回)
    RECALL_PLAN = "recall_plan"
    RECALL_PROGRESS = "recall_progress"
    RECALL_SUMMARY = "recall_summary"
    CERTIFICATE_ACTION = "certificate_action"  # certification body suspends / revokes / none
    DELIST_CONFIRMATION = "delist_confirmation"  # platform confirms the listing is down
    LEAD_OUTCOME = "lead_outcome"  # 检监联动: the responsible line reports back


# What a sample waits for, in words: timeline entries, Web UI details and notices use it.
AWAITED_TEXT: dict[DecisionKind, str] = {
    DecisionKind.SAMPLING_RECORD: "the sampling record (sealed sample, or purchase and unboxing)",
    DecisionKind.SAMPLE_RECEIPT: "the lab to receive the sample and check its seal",
    DecisionKind.LAB_REPORT: "the lab's test report",
    DecisionKind.RESULT_DELIVERY: "delivery of the result notice to the sampled party",
    DecisionKind.OBJECTION: "an objection or waiver from the sampled party",
    DecisionKind.OBJECTION_REVIEW: "the decision to accept or reject the objection",
    DecisionKind.RETEST_REPORT: "the re-test report",
    DecisionKind.DISPOSAL: "the decision to return or dispose of the sample",
    DecisionKind.PRODUCER_CONFIRMATION: "the labelled producer to confirm or deny making the product",
    DecisionKind.RECTIFICATION_EXTENSION: "a decision on the firm's request to extend rectification",
    DecisionKind.RECTIFICATION_REPORT: "the firm's rectification report",
    DecisionKind.RECTIFICATION_REVIEW: "the review of the rectification",
    DecisionKind.RE_INSPECTION: "the 复查 (re-inspection) of the corrected product",
    DecisionKind.PROVINCIAL_ANNOUNCEMENT: "the provincial bureau's 公告 of the failed 复查",
    DecisionKind.SUSPENSION_ORDER: "the order to suspend business and reorganise (责令停业，限期整顿)",
    DecisionKind.CREDIT_REPAIR_APPLICATION: "a credit-repair application",
    DecisionKind.CREDIT_REPAIR_ACCEPTANCE: "acceptance of the credit-repair application",
    DecisionKind.CREDIT_REPAIR_REVIEW: "the credit-repair decision",
    DecisionKind.SERIOUS_DISHONESTY_REVIEW: "a decision on listing as seriously dishonest",
    DecisionKind.CASE_FILING: "the filing decision (立案) of the enforcement case",
    DecisionKind.CASE_OUTCOME: "the outcome of the enforcement case",
    DecisionKind.CRIME_TRANSFER_DECISION: "the decision to transfer the suspected crime",
    DecisionKind.CRIME_TRANSFER_RECEIPT: "the public security organ's receipt of the transfer",
    DecisionKind.DEFECT_ASSESSMENT: "the defect assessment",
    DecisionKind.RECALL_DECISION: "the recall decision",
    DecisionKind.RECALL_PLAN: "the recall plan",
    DecisionKind.RECALL_PROGRESS: "the recall progress report",
    DecisionKind.RECALL_SUMMARY: "the recall summary report",
    DecisionKind.CERTIFICATE_ACTION: "the certification body's action on the certificate",
    DecisionKind.DELIST_CONFIRMATION: "the platform's confirmation that the listing is down",
    DecisionKind.LEAD_OUTCOME: "the responsible line's outcome for the lead",
}

# kind -> outcome -> roles that may choose it
ROLE_MATRIX: dict[DecisionKind, dict[str, frozenset[Role]]] = {
    DecisionKind.SAMPLING_RECORD: {
        "sealed": frozenset({Role.SAMPLER}),
        "refused": frozenset({Role.SAMPLER}),
    },
    DecisionKind.SAMPLE_RECEIPT: {
        "accepted": frozenset({Role.LAB}),
        "rejected": frozenset({Role.LAB}),
    },
    DecisionKind.LAB_REPORT: {"pass": frozenset({Role.LAB}), "fail": frozenset({Role.LAB})},
    DecisionKind.RESULT_DELIVERY: {"delivered": frozenset({Role.CASE_OFFICER})},
    DecisionKind.PRODUCER_CONFIRMATION: {
        "confirmed": frozenset({Role.CASE_OFFICER, Role.ENTERPRISE}),
        "denied": frozenset({Role.CASE_OFFICER, Role.ENTERPRISE}),
    },
    DecisionKind.OBJECTION: {
        "filed": frozenset({Role.ENTERPRISE, Role.CASE_OFFICER}),
        "waived": frozenset({Role.ENTERPRISE, Role.CASE_OFFICER}),
    },
    DecisionKind.OBJECTION_REVIEW: {
        "accepted": frozenset({Role.CASE_OFFICER}),
        "rejected": frozenset({Role.CASE_OFFICER}),
    },
    DecisionKind.RETEST_REPORT: {"pass": frozenset({Role.LAB}), "fail": frozenset({Role.LAB})},
    DecisionKind.DISPOSAL: {
        "returned": frozenset({Role.LAB, Role.CASE_OFFICER}),
        "disposed": frozenset({Role.LAB, Role.CASE_OFFICER}),
    },
    DecisionKind.RECTIFICATION_EXTENSION: {
        "granted": frozenset({Role.CASE_OFFICER}),
        "refused": frozenset({Role.CASE_OFFICER}),
    },
    DecisionKind.RECTIFICATION_REPORT: {"submitted": frozenset({Role.ENTERPRISE, Role.CASE_OFFICER})},
    DecisionKind.RECTIFICATION_REVIEW: {
        "accepted": frozenset({Role.CASE_OFFICER}),
        "rejected": frozenset({Role.CASE_OFFICER}),
    },
    DecisionKind.RE_INSPECTION: {
        "pass": frozenset({Role.CASE_OFFICER}),
        "fail": frozenset({Role.CASE_OFFICER}),
    },
    DecisionKind.PROVINCIAL_ANNOUNCEMENT: {"announced": frozenset({Role.CASE_OFFICER})},
    DecisionKind.SUSPENSION_ORDER: {"ordered": frozenset({Role.ENFORCEMENT})},
    DecisionKind.CREDIT_REPAIR_APPLICATION: {"filed": frozenset({Role.ENTERPRISE, Role.CREDIT_OFFICER})},
    DecisionKind.CREDIT_REPAIR_ACCEPTANCE: {
        "accepted": frozenset({Role.CREDIT_OFFICER}),
        "refused": frozenset({Role.CREDIT_OFFICER}),
    },
    DecisionKind.CREDIT_REPAIR_REVIEW: {
        "approved": frozenset({Role.CREDIT_OFFICER}),
        "rejected": frozenset({Role.CREDIT_OFFICER}),
    },
    DecisionKind.SERIOUS_DISHONESTY_REVIEW: {
        "listed": frozenset({Role.CREDIT_OFFICER}),
        "not_listed": frozenset({Role.CREDIT_OFFICER}),
    },
    DecisionKind.CASE_FILING: {
        "filed": frozenset({Role.ENFORCEMENT}),
        "not_filed": frozenset({Role.ENFORCEMENT}),
        "extended": frozenset({Role.ENFORCEMENT}),
    },
    DecisionKind.CASE_OUTCOME: {
        "penalty": frozenset({Role.ENFORCEMENT}),
        "no_penalty": frozenset({Role.ENFORCEMENT}),
        "extended": frozenset({Role.ENFORCEMENT}),
        "crime_suspected": frozenset({Role.ENFORCEMENT}),
    },
    DecisionKind.CRIME_TRANSFER_DECISION: {
        "transfer": frozenset({Role.ENFORCEMENT}),
        "no_transfer": frozenset({Role.ENFORCEMENT}),
    },
    DecisionKind.CRIME_TRANSFER_RECEIPT: {"received": frozenset({Role.PUBLIC_SECURITY, Role.ENFORCEMENT})},
    DecisionKind.DEFECT_ASSESSMENT: {
        "no_defect": frozenset({Role.CASE_OFFICER}),
        "defect": frozenset({Role.CASE_OFFICER}),
    },
    DecisionKind.RECALL_DECISION: {
        "voluntary": frozenset({Role.CASE_OFFICER, Role.ENTERPRISE}),
        "ordered": frozenset({Role.CASE_OFFICER}),
    },
    DecisionKind.RECALL_PLAN: {"submitted": frozenset({Role.ENTERPRISE, Role.CASE_OFFICER})},
    DecisionKind.RECALL_PROGRESS: {
        "in_progress": frozenset({Role.ENTERPRISE, Role.CASE_OFFICER}),
        "completed": frozenset({Role.ENTERPRISE, Role.CASE_OFFICER}),
    },
    DecisionKind.RECALL_SUMMARY: {"submitted": frozenset({Role.ENTERPRISE, Role.CASE_OFFICER})},
    DecisionKind.CERTIFICATE_ACTION: {
        "suspended": frozenset({Role.CERTIFICATION_BODY, Role.CASE_OFFICER}),
        "revoked": frozenset({Role.CERTIFICATION_BODY, Role.CASE_OFFICER}),
        "none": frozenset({Role.CERTIFICATION_BODY, Role.CASE_OFFICER}),
    },
    DecisionKind.DELIST_CONFIRMATION: {
        "delisted": frozenset({Role.PLATFORM, Role.ONLINE_OFFICER}),
        "refused": frozenset({Role.PLATFORM, Role.ONLINE_OFFICER}),
    },
    DecisionKind.LEAD_OUTCOME: {
        "confirmed": frozenset({Role.ENFORCEMENT, Role.CASE_OFFICER, Role.ONLINE_OFFICER}),
        "unfounded": frozenset({Role.ENFORCEMENT, Role.CASE_OFFICER, Role.ONLINE_OFFICER}),
    },
}

# Outcomes that must say why: a refusal or a rejection without a reason cannot be audited.
REASON_REQUIRED: frozenset[tuple[DecisionKind, str]] = frozenset(
    {
        (DecisionKind.SAMPLING_RECORD, "refused"),
        (DecisionKind.SAMPLE_RECEIPT, "rejected"),
        (DecisionKind.OBJECTION_REVIEW, "rejected"),
        (DecisionKind.OBJECTION_REVIEW, "accepted"),
        (DecisionKind.PRODUCER_CONFIRMATION, "denied"),
        (DecisionKind.OBJECTION, "filed"),
        (DecisionKind.RECTIFICATION_EXTENSION, "refused"),
        (DecisionKind.RECTIFICATION_REVIEW, "rejected"),
        (DecisionKind.RE_INSPECTION, "fail"),
        (DecisionKind.CREDIT_REPAIR_ACCEPTANCE, "refused"),
        (DecisionKind.CREDIT_REPAIR_REVIEW, "rejected"),
        (DecisionKind.SERIOUS_DISHONESTY_REVIEW, "listed"),
        (DecisionKind.SERIOUS_DISHONESTY_REVIEW, "not_listed"),
        (DecisionKind.CASE_FILING, "not_filed"),
        (DecisionKind.CASE_FILING, "extended"),
        (DecisionKind.CASE_OUTCOME, "no_penalty"),
        (DecisionKind.CASE_OUTCOME, "extended"),
        (DecisionKind.CASE_OUTCOME, "crime_suspected"),
        (DecisionKind.CRIME_TRANSFER_DECISION, "no_transfer"),
        (DecisionKind.CERTIFICATE_ACTION, "none"),
        (DecisionKind.DELIST_CONFIRMATION, "refused"),
        (DecisionKind.LEAD_OUTCOME, "unfounded"),
    }
)


def roles_for(kind: DecisionKind) -> frozenset[Role]:
    return frozenset().union(*ROLE_MATRIX[kind].values())


def role_names(kind: DecisionKind) -> list[str]:
    """The roles that may take `kind`, as the sample shows them (sorted names)."""
    return sorted(r.value for r in roles_for(kind))


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    role: Annotated[Role, Choice]
    name: MaybeName | None = None
    organisation: MaybeName | None = None
    region: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class EvidenceRef(BaseModel):
    """A file kept as proof (固证), addressed by its SHA-256."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    uri: Url | None = None


Evidence = Annotated[list[EvidenceRef], Field(max_length=MAX_EVIDENCE)]


class Signature(BaseModel):
    """Proof of the sender: a MAC by a deployment key over the decision and the workflow it is sent to
    (domain/signing.py says exactly what is covered)."""

    model_config = ConfigDict(extra="forbid")
    key_id: Annotated[str, text(64, min_length=1)]
    signed_at: Moment
    mac: Annotated[str, text(128, min_length=1)]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Annotated[DecisionKind, Choice]
    outcome: Annotated[str, text(64, min_length=1)]
    actor: Actor
    request_id: Id = Field(description="makes the decision idempotent")
    reason: Text | None = None
    evidence: Evidence = Field(default_factory=list)
    data: Data = Field(default_factory=dict)
    signature: Signature | None = Field(default=None, description="required where the deployment requires it")


class Receipt(BaseModel):
    """The answer to a decision: accepted or rejected with the reason; a repeat gets the first receipt."""

    request_id: str
    kind: str
    outcome: str
    accepted: bool
    reason: str | None = None
    stage: str
    recorded_at: datetime


# --- payloads: what `data` must hold for a kind ---------------------------------------------------


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeadType(StrEnum):
    FALSE_ADVERTISING = "false_advertising"  # 虚假宣传
    MISSING_CERTIFICATE = "missing_certificate"  # 无证
    FORGED_CERTIFICATE = "forged_certificate"  # 伪造证书
    ILLEGAL_AD = "illegal_ad"  # 违法广告
    UNKNOWN_ORIGIN = "unknown_origin"  # 来源不明


class Lead(_Payload):
    """A problem found while buying or sampling (检监联动), fixed as evidence and routed to its line."""

    type: Annotated[LeadType, Choice]
    description: RequiredText
    evidence: Evidence = Field(default_factory=list)


class SamplingRecordData(_Payload):
    record_no: MaybeCode | None = Field(title="抽样单编号", default=None, description="抽样单 / order number")
    sealed_at: Moment | None = Field(default=None, title="封样时间")
    order_no: MaybeCode | None = Field(title="平台订单号", default=None, description="platform order number when bought online")
    tracking_no: MaybeCode | None = Field(default=None, title="快递单号")
    leads: Annotated[list[Lead], Field(max_length=MAX_LEADS)] = Field(title="检监联动线索", 
        default_factory=list, description="problems found while buying (检监联动)"
    )


class SampleReceiptData(_Payload):
    seal_intact: bool = Field(default=True, title="封样完好")
    received_at: Moment | None = Field(default=None, title="收样时间")


class FailedItem(_Payload):
    item: Name = Field(description="检验项目")
    standard: Code = Field(description="标准编号, e.g. GB 4706.1-2005")
    requirement: Text | None = None
    result: Text | None = None
    severity: str | None = Field(default=None, pattern=r"^(A|B|C|serious|general)$")


class LabReportData(_Payload):
    report_no: Code = Field(title="检验报告编号")
    failed_items: Annotated[list[FailedItem], Field(max_length=MAX_FAILED_ITEMS)] = Field(title="不合格项目", default_factory=list)
    conclusion: Text | None = Field(default=None, title="检验结论")


class ResultDeliveryData(_Payload):
    delivered_on: Day | None = Field(title="送达日", default=None, description="送达日; the objection window runs from it")
    method: MaybeName | None = Field(default=None, title="送达方式")


class ObjectionData(_Payload):
    contested_items: Annotated[list[Name], Field(max_length=MAX_LIST)] = Field(title="异议项目", default_factory=list)
    retest_requested: bool = Field(default=True, title="申请复检")


class RectificationExtensionData(_Payload):
    days: int | None = Field(title="延期天数", default=None, ge=1, le=60, description="extension granted, in calendar days")


class ReInspectionData(_Payload):
    """A 复查 (Order 18 Art. 47-49): its report, and the sample the party provided free (Art. 49)."""

    report_no: MaybeCode | None = Field(title="复查报告编号", default=None, description="the 复查 test report number")
    sample_provided_free: bool = Field(title="样品无偿提供", default=True, description="复查所需样品由被抽样生产者、销售者无偿提供 (Art. 49)")


class ProvincialAnnouncementData(_Payload):
    """The provincial bureau's 公告 (Order 18 Art. 47 ¶2): its date starts the second 复查 window (Art. 48)."""

    announced_on: Day | None = Field(title="公告日", default=None, description="公告日 (default: the day it is recorded); the "
                                     "second 复查 window runs from it")
    announcement_no: MaybeCode | None = Field(default=None, title="公告编号")


class SuspensionOrderData(_Payload):
    """责令停业，限期整顿 (Order 18 Art. 48; 产品质量法 Art. 17): the 整顿 period is set in the order."""

    days: int = Field(title="整顿期限（天）", ge=1, le=365, description="the 整顿 period, in calendar days from the order")
    decision_no: MaybeCode | None = Field(default=None, title="决定书编号")


class CaseFilingData(_Payload):
    case_no: MaybeCode | None = Field(default=None, title="案件编号")


class HeavyPenalty(StrEnum):
    """The 较重行政处罚 of 《市场监督管理严重违法失信名单管理办法》(市场监管总局令第44号) 第二条."""

    AGGRAVATED_FINE = "aggravated_fine"  # 依照行政处罚裁量基准，按照从重处罚原则处以罚款
    QUALIFICATION_LOWERED = "qualification_lowered"  # 降低资质等级
    LICENCE_REVOKED = "licence_revoked"  # 吊销许可证件、营业执照
    BUSINESS_RESTRICTED = "business_restricted"  # 限制开展生产经营活动、责令停产停业、责令关闭、限制从业
    OTHER = "other"  # 法律、行政法规和部门规章规定的其他较重行政处罚

    @property
    def label(self) -> str:
        return _HEAVY_PENALTY_LABELS[self]


_HEAVY_PENALTY_LABELS = {
    HeavyPenalty.AGGRAVATED_FINE: "从重处罚的罚款",
    HeavyPenalty.QUALIFICATION_LOWERED: "降低资质等级",
    HeavyPenalty.LICENCE_REVOKED: "吊销许可证件、营业执照",
    HeavyPenalty.BUSINESS_RESTRICTED: "限制生产经营、责令停产停业、责令关闭、限制从业",
    HeavyPenalty.OTHER: "法律、行政法规和部门规章规定的其他较重行政处罚",
}


class CaseOutcomeData(_Payload):
    decision_no: MaybeCode | None = Field(default=None, title="处罚决定书编号")
    fine_amount: Money | None = Field(title="罚没款（元）", default=None, description="罚没款 in CNY")
    heavy: bool = Field(title="较重行政处罚", default=False, description="a 较重行政处罚 (市场监管总局令第44号 第二条): the only ground "
                        "for a serious-dishonesty proposal")
    heavy_kind: HeavyPenalty | None = Field(title="较重行政处罚种类", default=None, description="which 较重行政处罚; only with heavy")

    @model_validator(mode="after")
    def _kind_only_when_heavy(self) -> CaseOutcomeData:
        if self.heavy_kind is not None and not self.heavy:
            raise ValueError("heavy_kind: only with heavy = true (a 较重行政处罚)")
        return self


class DelistConfirmationData(_Payload):
    delisted_at: Moment | None = Field(default=None, title="下架时间")
    platform_ticket: MaybeCode | None = Field(default=None, title="平台工单号")


class CertificateActionData(_Payload):
    """What the certification body may report with its action."""

    certificate_no: MaybeCode | None = Field(title="证书编号", default=None, description="must be this product's certificate")
    reference: MaybeCode | None = Field(title="决定文号", default=None, description="the body's decision document number")
    effective_on: Day | None = Field(title="生效日", default=None, description="when the suspension or revocation takes effect")


class LeadOutcomeData(_Payload):
    """What the responsible line may report with a lead's outcome."""

    case_no: MaybeCode | None = Field(default=None, title="案件编号")
    measures: Text | None = Field(default=None, title="处理措施")


class DefectAssessmentData(_Payload):
    defect: Text | None = Field(title="缺陷", default=None, description="the defect found, in words")
    hazard: Text | None = Field(title="危害", default=None, description="the risk to persons or property")


class RecallDecisionData(_Payload):
    scope: Text | None = Field(title="召回范围", default=None, description="batches, production period or models concerned")
    units: Count | None = Field(title="涉及数量", default=None, description="units concerned")


class RecallPlanData(_Payload):
    plan_no: MaybeCode | None = Field(default=None, title="召回计划编号")
    units: Count | None = Field(title="召回数量", default=None, description="units to recall")
    measures: Text | None = Field(title="召回措施", default=None, description="repair, replacement, refund, …")


class RecallProgressData(_Payload):
    recovered: Count | None = Field(title="已召回数量（累计）", default=None, description="units recovered so far (cumulative)")
    note: Text | None = Field(default=None, title="备注")


class RecallSummaryData(_Payload):
    report_no: MaybeCode | None = Field(default=None, title="总结报告编号")
    recovered: Count | None = Field(title="召回总数", default=None, description="units recovered in all")


# What `data` must hold for a kind: the one table validation, `spotcheck schema` and the branch specs read.
PAYLOADS: dict[DecisionKind, type[_Payload]] = {
    DecisionKind.SAMPLING_RECORD: SamplingRecordData,
    DecisionKind.SAMPLE_RECEIPT: SampleReceiptData,
    DecisionKind.LAB_REPORT: LabReportData,
    DecisionKind.RETEST_REPORT: LabReportData,
    DecisionKind.RESULT_DELIVERY: ResultDeliveryData,
    DecisionKind.OBJECTION: ObjectionData,
    DecisionKind.RECTIFICATION_EXTENSION: RectificationExtensionData,
    DecisionKind.RE_INSPECTION: ReInspectionData,
    DecisionKind.PROVINCIAL_ANNOUNCEMENT: ProvincialAnnouncementData,
    DecisionKind.SUSPENSION_ORDER: SuspensionOrderData,
    DecisionKind.CASE_FILING: CaseFilingData,
    DecisionKind.CASE_OUTCOME: CaseOutcomeData,
    DecisionKind.DELIST_CONFIRMATION: DelistConfirmationData,
    DecisionKind.CERTIFICATE_ACTION: CertificateActionData,
    DecisionKind.LEAD_OUTCOME: LeadOutcomeData,
    DecisionKind.DEFECT_ASSESSMENT: DefectAssessmentData,
    DecisionKind.RECALL_DECISION: RecallDecisionData,
    DecisionKind.RECALL_PLAN: RecallPlanData,
    DecisionKind.RECALL_PROGRESS: RecallProgressData,
    DecisionKind.RECALL_SUMMARY: RecallSummaryData,
}


def parse_payload(decision: Decision) -> _Payload | None:
    model = PAYLOADS.get(decision.kind)
    return model.model_validate(decision.data) if model else None


def first_error(err: ValidationError, prefix: str = "") -> str:
    """The first problems (at most three) as `<field>: <message>`, within 240 characters; never the input."""
    return "; ".join(within(error_lines(err, prefix)[:3], MAX_MESSAGE - 60, more=False))


def parse_decision(raw: Any) -> tuple[Decision | None, str | None]:
    """Parse what arrived on the wire; a malformed decision yields the reason naming the field."""
    if isinstance(raw, Decision):
        return raw, None
    try:
        return Decision.model_validate(raw), None
    except ValidationError as err:
        return None, f"malformed decision: {first_error(err)}"


def decision_problem(
    decision: Decision,
    awaiting: Collection[DecisionKind],
    *,
    purchased: bool = False,
    closed_reason: dict[DecisionKind, str] | None = None,
) -> str | None:
    """Why `decision` cannot be taken now, or None. `awaiting` is what the sample waits for now;
    `closed_reason` explains kinds whose wait has passed (e.g. an objection after its window)."""
    kind = decision.kind
    if kind not in awaiting:
        if closed_reason and kind in closed_reason:
            return closed_reason[kind]
        waits = ", ".join(sorted(k.value for k in awaiting)) or "no decision"
        return f"not awaited: the sample waits for {waits}, not {kind.value}"
    outcomes = ROLE_MATRIX[kind]
    if decision.outcome not in outcomes:
        return f"unknown outcome {quoted(decision.outcome)} for {kind.value}; allowed: {', '.join(outcomes)}"
    roles = outcomes[decision.outcome]
    if decision.actor.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        return f"role {decision.actor.role.value} may not decide {kind.value}={decision.outcome}; allowed: {allowed}"
    if (kind, decision.outcome) in REASON_REQUIRED and not (decision.reason and decision.reason.strip()):
        return f"reason: required for {kind.value}={decision.outcome}"
    try:
        payload = parse_payload(decision)
    except ValidationError as err:
        return f"malformed data for {kind.value}: {first_error(err, 'data.')}"
    if isinstance(payload, LabReportData):
        if decision.outcome == "fail" and not payload.failed_items:
            return "data.failed_items: a fail must name at least one failed item and its standard"
        if decision.outcome == "pass" and payload.failed_items:
            return "data.failed_items: a pass cannot list failed items"
    if isinstance(payload, SampleReceiptData) and decision.outcome == "accepted" and not payload.seal_intact:
        return "data.seal_intact: a sample whose seal is broken cannot be accepted; reject it for re-sampling"
    if isinstance(payload, RectificationExtensionData) and decision.outcome == "granted" and not payload.days:
        return "data.days: a granted extension must say how many days"
    if isinstance(payload, ReInspectionData) and not payload.sample_provided_free:
        return ("data.sample_provided_free: the 复查 sample is provided free by the party "
                "(产品质量监督抽查管理暂行办法 第四十九条)")
    if kind is DecisionKind.DISPOSAL and decision.outcome == "returned" and purchased:
        return "a purchased sample is not returned to the seller: decide disposal=disposed"
    return None


def delivery_date_problem(delivered_on: date, sampled_on: date, today: date) -> str | None:
    """Why a delivery (送达) date cannot be taken, or None: it lies between the sampling date and today.
    The message names the sample's dates, not the input."""
    if sampled_on <= delivered_on <= today:
        return None
    return f"data.delivered_on: must lie between the sampling date {sampled_on} and today {today}"


def organisation_problem(decision: Decision, party_codes: Collection[str]) -> str | None:
    """Why the actor may not act for this sample's firm, or None. An enterprise acts only for itself:
    `actor.organisation` must be the credit code of one of the sample's parties (`party_codes`: the sampled
    party, the labelled producer). Other roles are staff of the authority or its appointed bodies, whose
    organisation is not a party of the sample: they are left to the role matrix (and the signature)."""
    if decision.actor.role is not Role.ENTERPRISE:
        return None
    own = (decision.actor.organisation or "").strip().upper()
    if own and own in {code.strip().upper() for code in party_codes if code}:
        return None
    return ("actor.organisation: an enterprise may act only for itself: give the unified social credit code "
            "of the sampled party or the labelled producer")
