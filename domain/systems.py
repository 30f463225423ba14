"""The outside systems Spotcheck exchanges decisions with, and the role each acts in. What a system may
decide is not listed here: it is read from the role matrix (domain/decisions.py `ROLE_MATRIX`), so a kind or
outcome added there reaches the system's callback at once."""

from __future__ import annotations

from enum import StrEnum

from domain.decisions import ROLE_MATRIX, DecisionKind, Role


class System(StrEnum):
    """A calling system; the names are those of the hand-overs sent to it (domain/records.py `Handover`)."""

    PLATFORM = "platform"  # e-commerce or livestream platform: delisting results
    LIMS = "lims"  # the inspection agency's LIMS (承检机构): receipt, lab and re-test reports, disposal
    CREDIT_PUBLICITY = "credit_publicity"  # the credit publicity system (信用监管): repair, serious list
    ENFORCEMENT = "enforcement"  # the enforcement case system (执法稽查): filing, outcome, transfer
    CERTIFICATION = "certification"  # a certification body (CCC 认证机构): certificate action
    PUBLIC_SECURITY = "public_security"  # 公安机关: receipt of a criminal transfer
    DATA_HUB = "data_hub"  # a provincial data hub or planning system: starts samples, decides nothing

    @property
    def role(self) -> Role | None:
        """The role the system's decisions are made in (None: it makes none)."""
        return _ROLES.get(self)


_ROLES: dict[System, Role] = {
    System.PLATFORM: Role.PLATFORM,
    System.LIMS: Role.LAB,
    System.CREDIT_PUBLICITY: Role.CREDIT_OFFICER,
    System.ENFORCEMENT: Role.ENFORCEMENT,
    System.CERTIFICATION: Role.CERTIFICATION_BODY,
    System.PUBLIC_SECURITY: Role.PUBLIC_SECURITY,
}


def decisions_of(role: Role) -> dict[DecisionKind, tuple[str, ...]]:
    """The kinds `role` may decide, each with the outcomes it may choose (from the role matrix)."""
    allowed = {kind: tuple(o for o, roles in outcomes.items() if role in roles) for kind, outcomes in ROLE_MATRIX.items()}
    return {kind: outcomes for kind, outcomes in allowed.items() if outcomes}
