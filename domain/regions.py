"""Administrative region names by their GB/T 2260 code, for monitors who read 杭州市 rather than 330100.

The table is data (GB/T 2260 as published by the Ministry of Civil Affairs): Zhejiang's province, its 11
cities and the districts and counties Spotcheck's examples and tests use, and the neighbouring bureaus a
fail made elsewhere is told to. A code not listed has no name: monitors still filter on `Region`."""

from __future__ import annotations

REGION_NAMES: dict[str, str] = {
    "330000": "浙江省",
    "330100": "杭州市", "330102": "上城区", "330105": "拱墅区", "330106": "西湖区", "330108": "滨江区",
    "330109": "萧山区", "330110": "余杭区", "330111": "富阳区", "330112": "临安区", "330113": "临平区",
    "330114": "钱塘区",
    "330200": "宁波市", "330203": "海曙区", "330205": "江北区", "330212": "鄞州区",
    "330300": "温州市", "330302": "鹿城区",
    "330400": "嘉兴市",
    "330500": "湖州市",
    "330600": "绍兴市",
    "330700": "金华市", "330782": "义乌市",
    "330800": "衢州市",
    "330900": "舟山市",
    "331000": "台州市",
    "331100": "丽水市",
    "110000": "北京市",
    "310000": "上海市",
    "320000": "江苏省", "320500": "苏州市",
    "340000": "安徽省",
    "350000": "福建省",
    "360000": "江西省",
    "440000": "广东省", "440100": "广州市", "440300": "深圳市",
}


def region_name(code: str) -> str | None:
    """The region's Chinese name, or None for a code the table does not hold."""
    return REGION_NAMES.get(code)
