"""The order subsets are cut from: seeded, nested, and stable under a change of filters."""

from __future__ import annotations

from kdscale.subsets import nested_order


def pool(dropped: set[int]) -> list[dict]:
    return [{"id": f"a{i}", "dropped": i in dropped} for i in range(100)]


def ids(answers: list[dict]) -> list[str]:
    return [a["id"] for a in answers]


def test_order_is_seeded_and_skips_dropped_answers():
    order = ids(nested_order(pool({3, 7}), seed=0))
    assert order == ids(nested_order(pool({3, 7}), seed=0))
    assert order != ids(nested_order(pool({3, 7}), seed=1))
    assert sorted(order) == sorted(f"a{i}" for i in range(100) if i not in {3, 7})


def test_a_filter_change_moves_only_the_answers_it_drops():
    before = ids(nested_order(pool(set()), seed=0))
    after = ids(nested_order(pool({int(before[5][1:])}), seed=0))  # the filter now drops the 6th answer
    assert after == before[:5] + before[6:]
