"""records: the grouped numbers of the stages' flat files come back as they were written."""

from kdscale.records import DROP_REASONS, TypeRates, dropped_flat, dropped_read


def test_type_rates_round_trip_through_the_flat_details():
    rates = TypeRates({"json": 0.5, "choice": 1.0}, {"json": 2, "choice": 1})
    flat = rates.flat()
    assert list(flat) == ["type_pass_rate.choice", "type_pass_rate.json", "type_prompts.choice", "type_prompts.json"]
    details = {"perplexity": 3.0, "pass_rate": 0.2, **flat}
    assert TypeRates.read(details) == rates


def test_dropped_counts_list_every_reason_and_read_back():
    flat = dropped_flat({"echo": 2})
    assert list(flat) == [f"dropped_{r}" for r in DROP_REASONS] and flat["dropped_echo"] == 2
    assert dropped_read({"dropped": 2, "kept": 5, **flat}) == {r: 2 if r == "echo" else 0 for r in DROP_REASONS}
