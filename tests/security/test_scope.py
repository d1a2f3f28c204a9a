import pytest

from yikatong.registry.models import RegionLevel
from yikatong.security.scope import child_prefix_length, in_subtree, level_of, parent_of, subtree_bounds

CITY, COUNTY, TOWN, VILLAGE = "511000000000", "511025000000", "511025100000", "511025100201"


@pytest.mark.parametrize(("code", "level"), [("510000000000", RegionLevel.PROVINCE), (CITY, RegionLevel.CITY),
                                             (COUNTY, RegionLevel.COUNTY), (TOWN, RegionLevel.TOWNSHIP),
                                             (VILLAGE, RegionLevel.VILLAGE), ("511025", RegionLevel.COUNTY)])
def test_level_from_code(code, level):
    assert level_of(code) is level


def test_parents():
    assert parent_of(VILLAGE) == TOWN and parent_of(TOWN) == COUNTY and parent_of(COUNTY) == CITY
    assert parent_of("510000000000") is None


def test_subtree_contains_descendants_only():
    assert in_subtree(CITY, VILLAGE) and in_subtree(COUNTY, VILLAGE) and in_subtree(TOWN, VILLAGE)
    assert in_subtree(VILLAGE, VILLAGE)
    assert not in_subtree(VILLAGE, "511025100202")  # the next village
    assert not in_subtree(TOWN, "511025101201")  # a village of the next township
    assert not in_subtree(COUNTY, "511024100201")  # another county
    assert not in_subtree(VILLAGE, TOWN)  # a clerk does not see upwards


def test_bounds_are_the_code_range_of_the_subtree():
    assert subtree_bounds(TOWN) == ("511025100000", "511025100999")
    lo, hi = subtree_bounds(COUNTY)
    assert lo <= VILLAGE <= hi and not lo <= "511024999999" <= hi


def test_malformed_codes_are_refused():
    with pytest.raises(ValueError, match="区划代码格式错误"):
        level_of("51102")


def test_child_prefix_lengths():
    assert [child_prefix_length(c) for c in ("510000000000", CITY, COUNTY, TOWN, VILLAGE)] == [4, 6, 9, 12, None]
