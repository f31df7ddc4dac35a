"""The duty list: the vendored ones load, bad files are reported by file and line, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.errors import TaxonomyError
from model.taxonomy import DutyEntry, Taxonomy, load_taxonomy, subcategory_key, write_taxonomy

TAXONOMIES = Path(__file__).resolve().parents[2] / "data" / "taxonomies"

CATEGORIES = "category,description\n交通管理,道路与车辆\n市容环境,\n"
DEPARTMENTS = "department,description\n公安局交通警察支队,\n城市管理行政执法局,城管\n"
DUTY_LIST = (
    "category,subcategory,department,time_limit,legal_basis,description\n"
    "交通管理,违章停车,公安局交通警察支队,30min,,\n"
    "市容环境,占道经营,城市管理行政执法局,5wd,,流动摊贩\n"
    "市容环境,其他,,,,\n"
)


def write_duty_list(directory: Path, categories: str = CATEGORIES, departments: str = DEPARTMENTS,
                    duty_list: str = DUTY_LIST) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in (("categories.csv", categories), ("departments.csv", departments),
                          ("duty_list.csv", duty_list)):
        if content is not None:
            (directory / name).write_text(content, encoding="utf-8")
    return directory


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(directory)
    return info.value.problems


@pytest.fixture(scope="module")
def haikou() -> Taxonomy:
    return load_taxonomy(TAXONOMIES / "haikou12345")


@pytest.fixture(scope="module")
def teddy() -> Taxonomy:
    return load_taxonomy(TAXONOMIES / "teddy2020c")


def test_vendored_haikou(haikou: Taxonomy) -> None:
    assert haikou.name == "haikou12345"
    assert (len(haikou.categories), len(haikou.subcategories), len(haikou.departments)) == (
        63, 456, 142)
    assert set(haikou.labels("category")) == {e.category for e in haikou.entries}
    assert {e.department for e in haikou.entries} <= set(haikou.departments)
    # subcategory names repeat under different categories; keys do not
    assert len({e.subcategory for e in haikou.entries}) < len(set(haikou.subcategories))


def test_vendored_teddy(teddy: Taxonomy) -> None:
    assert teddy.name == "teddy2020c"
    assert (len(teddy.categories), len(teddy.subcategories), len(teddy.departments)) == (15, 517, 0)
    assert all(e.department == "" for e in teddy.entries)


def test_labels_and_lookups(tmp_path: Path) -> None:
    t = load_taxonomy(write_duty_list(tmp_path / "city"))
    assert t.name == "city"
    assert t.labels("category") == ("交通管理", "市容环境")
    assert t.labels("subcategory") == ("交通管理/违章停车", "市容环境/占道经营", "市容环境/其他")
    assert t.labels("department") == ("公安局交通警察支队", "城市管理行政执法局")
    assert t.parent("市容环境/占道经营") == "市容环境"
    entry = t.entry(subcategory_key("市容环境", "占道经营"))
    assert entry == DutyEntry("市容环境", "占道经营", "城市管理行政执法局", "5wd", "", "流动摊贩")
    with pytest.raises(KeyError, match="unknown head 'dept'"):
        t.labels("dept")
    with pytest.raises(KeyError, match="not in duty list 'city'"):
        t.entry("市容环境/违章停车")


def test_utf8_bom_and_blank_optional_columns(tmp_path: Path) -> None:
    duty = "\ufeffcategory,subcategory,department\n交通管理,违章停车,\n"
    t = load_taxonomy(write_duty_list(tmp_path / "city", duty_list=duty))
    assert t.entries == (DutyEntry("交通管理", "违章停车"),)


def test_unknown_parent_category(tmp_path: Path) -> None:
    duty = DUTY_LIST + "环境保护,噪音,,,,\n"
    [problem] = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert problem.startswith(f"{tmp_path / 'city' / 'duty_list.csv'}:5: ")
    assert "unknown parent category '环境保护'" in problem and "categories.csv" in problem


def test_duplicate_subcategory(tmp_path: Path) -> None:
    duty = DUTY_LIST + "市容环境,占道经营,,,,\n"
    path = tmp_path / "city" / "duty_list.csv"
    [problem] = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert problem == (f"{path}:5: duplicate subcategory '市容环境/占道经营' (first at {path}:3)")


def test_same_subcategory_name_under_two_categories_is_fine(tmp_path: Path) -> None:
    duty = DUTY_LIST + "交通管理,其他,,,,\n"
    t = load_taxonomy(write_duty_list(tmp_path / "city", duty_list=duty))
    assert "交通管理/其他" in t.subcategories and "市容环境/其他" in t.subcategories


def test_department_not_listed(tmp_path: Path) -> None:
    duty = DUTY_LIST.replace("城市管理行政执法局,5wd", "城管局,5wd")
    [problem] = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert problem.startswith(f"{tmp_path / 'city' / 'duty_list.csv'}:3: ")
    assert "department '城管局' is not listed in departments.csv" in problem


@pytest.mark.parametrize("limit", ["30 minutes", "30", "1w", "h24", "-3d", "3 d"])
def test_bad_time_limit(tmp_path: Path, limit: str) -> None:
    duty = DUTY_LIST.replace("30min", limit)
    [problem] = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert problem.startswith(f"{tmp_path / 'city' / 'duty_list.csv'}:2: time_limit {limit!r}")
    assert "e.g. 30min, 24h, 5wd" in problem


@pytest.mark.parametrize("limit", ["30min", "24h", "3d", "5wd", "1.5h"])
def test_good_time_limits(tmp_path: Path, limit: str) -> None:
    duty = DUTY_LIST.replace("30min", limit)
    assert load_taxonomy(write_duty_list(tmp_path / "city", duty_list=duty)).entries[0].time_limit \
        == limit


@pytest.mark.parametrize("missing", ["categories.csv", "departments.csv", "duty_list.csv"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    directory = write_duty_list(tmp_path / "city")
    (directory / missing).unlink()
    problems = problems_of(directory)
    assert f"{directory / missing}: missing; expected columns" in problems[0]


def test_not_a_directory(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "nowhere")
    assert "not a directory" in problem and "duty_list.csv" in problem


def test_bad_header(tmp_path: Path) -> None:
    duty = DUTY_LIST.replace("category,subcategory,", "cat,subcategory,", 1)
    [problem] = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert problem.startswith(f"{tmp_path / 'city' / 'duty_list.csv'}:1: header")
    assert "missing ['category']" in problem and "unknown ['cat']" in problem
    assert "expected category,subcategory,department" in problem


def test_empty_file_is_a_bad_header(tmp_path: Path) -> None:
    problems = problems_of(write_duty_list(tmp_path / "city", departments=""))
    assert problems[0].startswith(f"{tmp_path / 'city' / 'departments.csv'}:1: header")
    # with no departments known, the duty list's departments are reported too
    assert sum("is not listed in departments.csv" in p for p in problems) == 2


def test_duplicate_department(tmp_path: Path) -> None:
    departments = DEPARTMENTS + "公安局交通警察支队,again\n"
    path = tmp_path / "city" / "departments.csv"
    [problem] = problems_of(write_duty_list(tmp_path / "city", departments=departments))
    assert problem == (f"{path}:4: duplicate department '公安局交通警察支队' (first at {path}:2)")


def test_duplicate_and_empty_category(tmp_path: Path) -> None:
    categories = CATEGORIES + "交通管理,\n,\n"
    path = tmp_path / "city" / "categories.csv"
    problems = problems_of(write_duty_list(tmp_path / "city", categories=categories))
    assert problems == [f"{path}:4: duplicate category '交通管理' (first at {path}:2)",
                        f"{path}:5: empty category"]


def test_category_with_key_separator(tmp_path: Path) -> None:
    categories = "category\n交通/管理\n"
    duty = "category,subcategory\n交通/管理,违章停车\n"
    problems = problems_of(write_duty_list(tmp_path / "city", categories=categories,
                                           duty_list=duty))
    assert any("'交通/管理' contains '/'" in p for p in problems)


def test_required_cells_and_extra_cells(tmp_path: Path) -> None:
    duty = DUTY_LIST + "市容环境,,,,,\n交通管理,超速,,,,,多余\n"
    path = tmp_path / "city" / "duty_list.csv"
    problems = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert problems == [f"{path}:6: more cells than the 6 columns",
                        f"{path}:5: category and subcategory are required"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    duty = DUTY_LIST + "环境保护,噪音,环保局,1w,,\n"
    problems = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert len(problems) == 3
    assert all(p.startswith(f"{tmp_path / 'city' / 'duty_list.csv'}:5: ") for p in problems)
    with pytest.raises(TaxonomyError, match="invalid duty list:\n  "):
        load_taxonomy(tmp_path / "city")


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    """A quoted cell may span lines; the problem names the line the row ends on."""
    duty = DUTY_LIST + '市容环境,乱贴广告,,,,"第一行\n第二行"\n环境保护,噪音,,,,\n'
    [problem] = problems_of(write_duty_list(tmp_path / "city", duty_list=duty))
    assert problem.startswith(f"{tmp_path / 'city' / 'duty_list.csv'}:7: ")


def test_constructor_validates() -> None:
    with pytest.raises(TaxonomyError, match="entry 2: unknown parent category 'B'"):
        Taxonomy(name="x", categories=("A",), departments=(),
                 entries=(DutyEntry("A", "a"), DutyEntry("B", "b")))


@pytest.mark.parametrize("which", ["haikou", "teddy"])
def test_dict_round_trip(which: str, request: pytest.FixtureRequest) -> None:
    t = request.getfixturevalue(which)
    assert Taxonomy.from_dict(t.to_dict()) == t


@pytest.mark.parametrize("broken", [
    {},
    {"name": "x", "categories": ["A"], "departments": []},
    {"name": "x", "categories": ["A"], "departments": [], "entries": [{"category": "A"}]},
    {"name": "x", "categories": ["A"], "departments": [],
     "entries": [{"category": "A", "subcategory": "a", "owner": "?"}]},
])
def test_from_dict_malformed(broken: dict) -> None:
    with pytest.raises(TaxonomyError, match="taxonomy snapshot is malformed"):
        Taxonomy.from_dict(broken)


@pytest.mark.parametrize("which", ["haikou", "teddy"])
def test_write_then_load_round_trip(which: str, request: pytest.FixtureRequest,
                                    tmp_path: Path) -> None:
    t = request.getfixturevalue(which)
    write_taxonomy(t, tmp_path / t.name)
    assert load_taxonomy(tmp_path / t.name) == t


def test_write_then_load_keeps_every_cell(tmp_path: Path) -> None:
    parking = DutyEntry("交通管理", "违章停车", "交警", "30min", "《道路交通安全法》第56条",
                        '含"引号",逗号\n和换行')
    t = Taxonomy(name="city", categories=("交通管理", "市容"), departments=("交警", "城管, 执法局"),
                 entries=(parking, DutyEntry("市容", "其他")))
    write_taxonomy(t, tmp_path / "city")
    assert load_taxonomy(tmp_path / "city") == t
