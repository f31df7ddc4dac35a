"""Duty-list rules shared by serving and training: time limits, due dates, label keys, checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model.duty import check_labels, due_date, duration, row_labels
from model.errors import DataError, InvalidInput
from model.taxonomy import Taxonomy

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # a Monday, 09:00 in China
HOUR = timedelta(hours=1)


def test_working_days_skip_weekends_in_china_time():
    friday_evening_utc = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)  # Saturday 04:00 in China
    assert due_date(friday_evening_utc, "1wd") == friday_evening_utc + timedelta(days=2)
    assert due_date(T0, "0.5d") == T0 + 12 * HOUR
    with pytest.raises(InvalidInput, match="number and a unit"):
        due_date(T0, "3 weeks")



def test_calendar_durations_refuse_working_days_and_junk():
    assert duration("30min", "min_age") == timedelta(minutes=30)
    assert duration(" 2h ", "min_age") == 2 * HOUR
    for bad in ("5wd", "3 weeks", "", "1e3h"):
        with pytest.raises(InvalidInput) as err:
            duration(bad, "max_age")
        assert err.value.field == "max_age"


def test_row_labels_give_the_subcategory_as_its_key():
    assert row_labels({"category": "城乡建设", "subcategory": "物业管理"}, "r") == {
        "category": "城乡建设", "subcategory": "城乡建设/物业管理"}
    assert row_labels({"subcategory": "城乡建设/物业管理", "department": " 住建局 "}, "r") == {
        "category": "城乡建设", "subcategory": "城乡建设/物业管理", "department": "住建局"}
    with pytest.raises(DataError, match="row 7: subcategory '物业管理' needs its category"):
        row_labels({"subcategory": "物业管理"}, "row 7")


def test_labels_are_checked_against_the_duty_list_with_suggestions():
    taxonomy = Taxonomy.from_dict({
        "name": "t", "categories": ["城乡建设", "交通"], "departments": ["城管局", "交通局"],
        "entries": [{"category": "城乡建设", "subcategory": "物业管理", "department": "城管局"},
                    {"category": "交通", "subcategory": "违停", "department": "交通局"}]})
    assert check_labels(taxonomy, {"category": "城乡建设", "subcategory": "物业管理"}, "") == {
        "category": "城乡建设", "subcategory": "城乡建设/物业管理", "department": None}
    with pytest.raises(InvalidInput, match="did you mean '城管局'") as err:
        check_labels(taxonomy, {"department": "城管具"}, "parts[0].")
    assert err.value.field == "parts[0].department"
    with pytest.raises(InvalidInput, match="belongs to category '交通'"):
        check_labels(taxonomy, {"category": "城乡建设", "subcategory": "交通/违停"}, "")
