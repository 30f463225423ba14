"""Administrative region names by their GB/T 2260 code, for monitors who read 杭州市 rather than 330100.

The table is data (GB/T 2260 as published by the Ministry of Civil Affairs): Zhejiang's province, its 11
cities and their districts, counties and county-level cities, and the neighbouring bureaus a fail made
elsewhere is told to. A code not listed has no name: monitors still filter on `Region`, and a printed notice
refuses to name its authority by a bare code (`authority_name`)."""

from __future__ import annotations

REGION_NAMES: dict[str, str] = {
    "330000": "浙江省",
    "330100": "杭州市", "330102": "上城区", "330105": "拱墅区", "330106": "西湖区", "330108": "滨江区",
    "330109": "萧山区", "330110": "余杭区", "330111": "富阳区", "330112": "临安区", "330113": "临平区",
    "330114": "钱塘区", "330122": "桐庐县", "330127": "淳安县", "330182": "建德市",
    "330200": "宁波市", "330203": "海曙区", "330205": "江北区", "330206": "北仑区", "330211": "镇海区",
    "330212": "鄞州区", "330213": "奉化区", "330225": "象山县", "330226": "宁海县", "330281": "余姚市",
    "330282": "慈溪市",
    "330300": "温州市", "330302": "鹿城区", "330303": "龙湾区", "330304": "瓯海区", "330305": "洞头区",
    "330324": "永嘉县", "330326": "平阳县", "330327": "苍南县", "330328": "文成县", "330329": "泰顺县",
    "330381": "瑞安市", "330382": "乐清市", "330383": "龙港市",
    "330400": "嘉兴市", "330402": "南湖区", "330411": "秀洲区", "330421": "嘉善县", "330424": "海盐县",
    "330481": "海宁市", "330482": "平湖市", "330483": "桐乡市",
    "330500": "湖州市", "330502": "吴兴区", "330503": "南浔区", "330521": "德清县", "330522": "长兴县",
    "330523": "安吉县",
    "330600": "绍兴市", "330602": "越城区", "330603": "柯桥区", "330604": "上虞区", "330624": "新昌县",
    "330681": "诸暨市", "330683": "嵊州市",
    "330700": "金华市", "330702": "婺城区", "330703": "金东区", "330723": "武义县", "330726": "浦江县",
    "330727": "磐安县", "330781": "兰溪市", "330782": "义乌市", "330783": "东阳市", "330784": "永康市",
    "330800": "衢州市", "330802": "柯城区", "330803": "衢江区", "330822": "常山县", "330824": "开化县",
    "330825": "龙游县", "330881": "江山市",
    "330900": "舟山市", "330902": "定海区", "330903": "普陀区", "330921": "岱山县", "330922": "嵊泗县",
    "331000": "台州市", "331002": "椒江区", "331003": "黄岩区", "331004": "路桥区", "331022": "三门县",
    "331023": "天台县", "331024": "仙居县", "331081": "温岭市", "331082": "临海市", "331083": "玉环市",
    "331100": "丽水市", "331102": "莲都区", "331121": "青田县", "331122": "缙云县", "331123": "遂昌县",
    "331124": "松阳县", "331125": "云和县", "331126": "庆元县", "331127": "景宁畲族自治县", "331181": "龙泉市",
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


def authority_name(code: str) -> str | None:
    """The full name of the market regulation bureau (市场监督管理局) of a region, as printed on its documents:
    浙江省市场监督管理局, 杭州市市场监督管理局, a district's with its city (杭州市西湖区市场监督管理局), a county's or a
    county-level city's by itself (桐庐县…, 义乌市…). None when the table does not name the region."""
    name = region_name(code)
    if name is None:
        return None
    if not code.endswith("00") and name.endswith("区"):
        city = region_name(code[:4] + "00")
        if city is None:
            return None
        name = city + name
    return name + "市场监督管理局"


def authority_label(code: str) -> str:
    """The bureau as a notice or hand-over names it: its full name, or for a region the table does not name
    the code said to be one (never a bare code passed off as a name)."""
    return authority_name(code) or f"行政区划代码 {code} 的市场监督管理局"
