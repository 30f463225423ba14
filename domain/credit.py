"""Credit listings: the dishonesty tier of a listing and the periods it takes from the rule pack; the
criterion of the serious-dishonesty proposal. Pure: the workflow asks the deadlines of the rules named here,
each in the version in force on the publication date (`domain/rules.py`).

- 《信用修复管理办法》(国家发展改革委令第36号, in force 2026-04-01): dishonesty information is minor 轻微 (publicity
  of at most 3 months; repair once the legal duties are met), general 一般 (3 months to 1 year) or serious 严重
  (1 to 3 years); repair may be applied for only after the shortest period, and publicity ends by itself at
  the longest. Listings published before 2026-04-01 keep the 2021 rules: the rule versions say so.
- The Zhejiang opinion (2025-09-09, task 10): a spot-check fail is public for one year (rule `credit_listing`);
  the listing ends at whichever comes first, that year or the tier's longest period.
- 《市场监督管理严重违法失信名单管理办法》(市场监管总局令第44号) 第二条: the serious-dishonesty list needs a
  较重行政处罚 (heavier administrative penalty) for a listed behaviour; repeated fails are no criterion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.decisions import HeavyPenalty
from domain.rules import Deadline


class DishonestyTier(StrEnum):
    MINOR = "minor"  # 轻微失信信息
    GENERAL = "general"  # 一般失信信息
    SERIOUS = "serious"  # 严重失信信息


TIER_NAMES = {DishonestyTier.MINOR: "轻微", DishonestyTier.GENERAL: "一般", DishonestyTier.SERIOUS: "严重"}

# A spot-check fail whose decision names no tier is published as general dishonesty information: its
# one-year publicity under the opinion is the general tier's longest period. Local policy default.
DEFAULT_TIER = DishonestyTier.GENERAL
OPINION_RULE = "credit_listing"  # the opinion's one year for a spot-check fail
PUBLICITY_RULE = "credit_publicity"  # the latest lawful publication date


def shortest_rule(tier: DishonestyTier) -> str:
    """The rule of the tier's shortest publicity period: repair may be applied for only after it."""
    return f"credit_repair_wait_{tier.value}"


def longest_rule(tier: DishonestyTier) -> str:
    """The rule of the tier's longest publicity period: publicity ends by itself at its end."""
    return f"credit_publicity_max_{tier.value}"


def tier_of(context: Mapping[str, Any], ordered: DishonestyTier | None) -> tuple[DishonestyTier, str]:
    """The tier a listing is published with, and where it came from: the branch's context
    (`dishonesty_tier`, given with the fail), else the order (set by the plan), else the default."""
    given = context.get("dishonesty_tier")
    if isinstance(given, str) and given in DishonestyTier._value2member_map_:
        return DishonestyTier(given), "given with the fail"
    unusable = "" if given is None else " (the given tier was not one of minor, general, serious)"
    if ordered is not None:
        return ordered, "set by the plan in the order" + unusable
    return DEFAULT_TIER, "default for a spot-check fail" + unusable


def publicity_end(longest: Deadline, opinion: Deadline) -> Deadline:
    """The listing ends at the earlier of the tier's longest period and the opinion's year (on a tie: the
    opinion's, the rule that governed before tiers)."""
    return longest if longest.due < opinion.due else opinion


def repair_opens(shortest: Deadline) -> date:
    """The first day a repair application is taken: the day after the shortest period, or the publication
    day itself when the tier has none (length 0: repair once the legal duties are met)."""
    if shortest.length == 0:
        return shortest.due_date  # the publication day (China time)
    return shortest.due_date + timedelta(days=1)


def repair_too_early(shortest: Deadline, now: datetime) -> str | None:
    """Why an application at `now` is refused, or None once the shortest period has passed."""
    if shortest.length == 0 or now > shortest.due:
        return None
    version = f", rule version from {shortest.effective_from}" if shortest.effective_from else ""
    return (f"credit repair may be applied for from {repair_opens(shortest)}: "
            f"{shortest.length} months after publication ({shortest.basis}{version})")


def repair_measures(shortest: Deadline) -> str:
    """The measures an application follows, as a notice names them: the first 《title》 of the basis of the
    shortest period's rule version."""
    match = re.search(r"《[^》]+》", shortest.basis)
    return match.group(0) if match else "《信用修复管理办法》"


def heavy_penalty(result: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether an enforcement result is a 较重行政处罚 (Order 44 第二条) and a line saying which."""
    if result.get("heavy") is not True:
        return False, "not a 较重行政处罚 (市场监管总局令第44号 第二条): no serious-dishonesty proposal"
    kind = result.get("heavy_kind")
    label = HeavyPenalty(kind).label if isinstance(kind, str) and kind in HeavyPenalty._value2member_map_ \
        else "kind not stated"
    fine = result.get("fine_amount")
    return True, (f"较重行政处罚 (市场监管总局令第44号 第二条): {label}"
                  + (f", fine {fine} CNY" if fine is not None else ""))


__all__ = ["DEFAULT_TIER", "OPINION_RULE", "PUBLICITY_RULE", "TIER_NAMES", "DishonestyTier", "heavy_penalty",
           "longest_rule", "publicity_end", "repair_measures", "repair_opens", "repair_too_early", "shortest_rule", "tier_of"]
