"""Staff users of the workbench and what each may decide (issue 11): the roles they hold, the regions they act
for, and, for an enterprise user, the one enterprise it acts for. Pure: the store is starter/users.py.

Regions are GB/T 2260 codes and cover their subdivisions: 330000 (浙江省) covers 330100 (杭州市) and 330106;
330100 covers 3301xx: a bureau's area (domain/jurisdiction.py `area_prefix`), read by the refusal here and by
the inbox's visibility query (`Region STARTS_WITH …`), so the two never disagree."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.bounds import MaybeName, Name, quoted
from domain.decisions import Actor, DecisionKind, Role, roles_for
from domain.jurisdiction import area_prefix
from domain.models import CreditCode, RegionCode

UserId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$", description="the actor id")]
MAX_ROLES, MAX_REGIONS = len(Role), 64


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: UserId
    display_name: Name
    roles: Annotated[tuple[Role, ...], Field(min_length=1, max_length=MAX_ROLES)]
    regions: Annotated[tuple[RegionCode, ...], Field(max_length=MAX_REGIONS)] = ()
    organisation: MaybeName | None = None
    credit_code: CreditCode | None = Field(default=None, description="an enterprise user's 统一社会信用代码")
    disabled: bool = False

    @model_validator(mode="after")
    def _enterprise_has_its_code(self) -> User:
        if Role.ENTERPRISE in self.roles and not self.credit_code:
            raise ValueError("credit_code: an enterprise user acts for one enterprise: give its credit code")
        if set(self.roles) - {Role.ENTERPRISE} and not self.regions:
            raise ValueError("regions: a staff user needs at least one region it acts for")
        return self

    def covers(self, region: str) -> bool:
        return any(region.startswith(area_prefix(held)) for held in self.regions)

    def deciding_roles(self, kind: DecisionKind) -> list[Role]:
        """The user's roles that may decide `kind` (by the role matrix), in the user's order."""
        allowed = roles_for(kind)
        return [r for r in self.roles if r in allowed]

    def actor(self, role: Role, sample_region: str | None) -> Actor:
        """The actor of this user's decision in `role`: an enterprise acts under its credit code (what the
        workflow checks against the sample's parties), staff under their organisation and the region held
        that covers the sample."""
        if role is Role.ENTERPRISE:
            return Actor(id=self.id, role=role, name=self.display_name, organisation=self.credit_code)
        region = sample_region if sample_region and self.covers(sample_region) else None
        return Actor(id=self.id, role=role, name=self.display_name, organisation=self.organisation or None,
                     region=region)


def act_problem(user: User, kind: DecisionKind, role: Role, sample_region: str | None,
                party_codes: Collection[str]) -> str | None:
    """Why `user` may not decide `kind` in `role` for a sample of `sample_region` whose parties have the
    credit codes `party_codes`, or None. Names the field, never echoes more than a short piece of input."""
    if user.disabled:
        return "user: disabled"
    if role not in user.roles:
        return f"role: {role.value} is not one of your roles ({', '.join(r.value for r in user.roles)})"
    if role not in roles_for(kind):
        allowed = ", ".join(sorted(r.value for r in roles_for(kind)))
        return f"kind: {kind.value} is decided by {allowed}, not {role.value}"
    if role is Role.ENTERPRISE:
        own = (user.credit_code or "").upper()
        if own not in {c.strip().upper() for c in party_codes if c}:
            return "organisation: an enterprise may act only for itself, and this sample is another enterprise's"
        return None
    if not sample_region or not user.covers(sample_region):
        shown = quoted(sample_region or "", 8)
        return f"region: the sample's region {shown} is outside your regions ({', '.join(user.regions)})"
    return None
