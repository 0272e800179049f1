"""params.yaml: parsing into typed objects, validation messages, and the packaged profiles."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

import pytest
import yaml

from kdscale import config, profile
from kdscale.cli import main
from kdscale.config import CHOICES, POSITIVE, Params, check_size, load_params, parse_params, to_dict
from kdscale.paths import Run
from kdscale.errors import UserError
from kdscale.profile import profile_params

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "src/kdscale/profiles").glob("*.yaml"))


def embedded() -> dict:
    return profile_params("embedded")


DEFAULT_STUDENT = "pruned10"  # the embedded profile's student: `*` in a key below


def with_value(key: str, value) -> dict:
    """The embedded profile with one dotted key set."""
    raw = copy.deepcopy(embedded())
    *sections, last = key.replace("*", DEFAULT_STUDENT).split(".")
    node = raw
    for section in sections:
        node = node[section]
    node[last] = value
    return raw


def error(raw) -> str:
    with pytest.raises(UserError) as e:
        parse_params(raw)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: ")  # names the file
    return message


# -----------------------------------------------------------------------------
# what parses


def test_defaults_parse():
    assert parse_params({}) == Params()
    assert parse_params(None) == Params()
    assert parse_params({"data": None}) == Params()  # an empty section keeps its defaults


def test_profiles_are_packaged_and_validate():
    names = [p.stem for p in PROFILES]
    assert names == ["embedded", "paper"]
    packaged = sorted(p.name for p in (resources.files("kdscale") / "profiles").iterdir() if p.name.endswith(".yaml"))
    assert packaged == [p.name for p in PROFILES]
    for name in names:
        raw = yaml.safe_load(profile.render(name))
        params = parse_params(raw, name)
        # every key is spelled out, so the file documents the whole configuration
        assert set(config.flatten(raw)) == set(config.flatten(to_dict(params)))


def test_params_yaml_is_the_embedded_profile_rendered_from_the_defaults():
    assert (REPO / "params.yaml").read_text() == profile.render("embedded")
    assert to_dict(parse_params(embedded())) == to_dict(Params())  # the embedded profile changes nothing
    assert yaml.safe_load((REPO / "src/kdscale/profiles/embedded.yaml").read_text()) is None  # a header only


def test_params_yaml_carries_each_keys_description():
    text = profile.render("embedded")
    described = [f for section in (config.Params, config.TeacherParams, config.TrainParams)
                 for f in section.model_fields.values() if f.description]
    assert all(f.description in text for f in described)


def test_a_profile_changes_only_the_keys_it_names():
    paper, defaults = profile.profile_params("paper"), to_dict(Params())
    assert paper["train"]["learning_rate"] == 5e-5 and paper["train"]["epochs"] == defaults["train"]["epochs"]
    assert paper["teacher"]["filters"] == defaults["teacher"]["filters"]


def test_paper_profile_is_the_paper_setting():
    params = parse_params(profile_params("paper"))
    assert params.scaling.sizes == [0, 500, 2000, 5000, 10000, 15000]  # and the untrained student
    assert params.teacher.model == "gpt2-xl" and list(params.students) == ["gpt2"]  # replaces the embedded one
    assert params.students["gpt2"].model == "gpt2"
    assert (params.train.epochs, params.train.learning_rate, params.train.batch_size) == (2.0, 5e-5, 16)
    assert params.data.source == "tatsu-lab/alpaca"


def test_ints_are_accepted_as_floats_and_null_strings_as_empty():
    params = parse_params(with_value("train.learning_rate", 1))
    assert params.train.learning_rate == 1.0 and isinstance(params.train.learning_rate, float)
    assert parse_params(with_value("teacher.revision", None)).teacher.revision == ""


# -----------------------------------------------------------------------------
# what does not


@pytest.mark.parametrize("raw, named, suggestion", [
    ({"data": {"poolsize": 3}}, "'data.poolsize'", "did you mean 'data.pool_size'?"),
    ({"trian": {}}, "'trian'", "did you mean 'train'?"),
    ({"teacher": {"filters": {"emtpy": True}}}, "'teacher.filters.emtpy'", "did you mean 'teacher.filters.empty'?"),
    ({"scaling": {"size": [1]}}, "'scaling.size'", "did you mean 'scaling.sizes'?"),
])
def test_unknown_key_is_named_with_the_closest_suggestion(raw, named, suggestion):
    message = error(raw)
    assert f"unknown key {named}" in message
    assert suggestion in message


def test_unknown_key_without_a_close_match_lists_the_known_keys():
    message = error({"report": {"zzz": 1}})
    assert "unknown key 'report.zzz'" in message
    assert "known keys: weight_perplexity, weight_pass_rate, weight_speed" in message


@pytest.mark.parametrize("key, value, expected", [
    ("data.pool_size", "many", "must be an integer, got 'many'"),
    ("data.pool_size", 440.0, "must be an integer, got 440.0"),
    ("data.pool_size", True, "must be an integer, got True"),
    ("seed", "0", "must be an integer, got '0'"),
    ("scaling.sizes", 100, "must be a list of integers, got 100"),
    ("scaling.sizes", [25, "50"], "must be a list of integers, got [25, '50']"),
    ("teacher.do_sample", "yes", "must be true or false, got 'yes'"),
    ("train.learning_rate", "fast", "must be a number, got 'fast'"),
    ("data.source", 5, "must be a string, got 5"),
    ("data", 5, "'data' must be a mapping, got 5"),
    ("teacher.filters", [], "'teacher.filters' must be a mapping, got []"),
])
def test_wrong_type_names_the_key_and_the_type(key, value, expected):
    message = error(with_value(key, value))
    assert f"'{key}'" in message
    assert expected in message


def test_whole_file_must_be_a_mapping():
    assert "must be a mapping" in error(["seed", 0])


# The contract, written out by hand: read off the models, a key that lost its Literal or its bound would
# drop out of the tests silently (a plain str accepts the typo 'dorp').
CHOICE_KEYS = {
    "device": ["auto", "cpu", "cuda"],
    "dtype": ["auto", "bfloat16", "float16", "float32"],
    "teacher.backend": ["hf", "openai", "vllm"],
    "teacher.filters.truncated": ["drop", "keep"],
    "teacher.prompt_format": ["alpaca", "chat"],
    "train.lr_scheduler": ["constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "inverse_sqrt",
                           "linear", "polynomial"],
    "train.objective": ["kd", "mixed", "sft"],
    "train.overlong": ["drop", "truncate"],
    "train.schedule": ["epochs", "steps"],
    "sweep.metric": ["degenerate_share", "pass_rate", "perplexity"],
}
POSITIVE_KEYS = [
    "data.heldout_size", "data.pool_size", "eval.batch_size", "eval.max_new_tokens", "eval.speed_new_tokens",
    "eval.speed_runs", "students.*.hidden_size", "students.*.intermediate_size",
    "students.*.max_position_embeddings", "students.*.num_heads", "students.*.num_layers", "teacher.batch_size",
    "teacher.concurrency",
    "teacher.filters.repetition_ngram", "teacher.max_new_tokens", "teacher.max_total_retries",
    "teacher.request_timeout", "teacher.temperature", "teacher.tensor_parallel_size", "teacher.top_p",
    "teacher_topk.batch_size", "teacher_topk.k", "train.batch_size", "train.epochs", "train.kd_temperature",
    "train.learning_rate", "train.logging_steps", "train.max_length", "train.save_steps"]


@pytest.mark.parametrize("key, allowed", sorted(CHOICE_KEYS.items()))
def test_a_typo_in_a_choice_is_refused_with_the_allowed_values(key, allowed):
    typo = allowed[0][::-1] if allowed[0][::-1] not in allowed else allowed[0] + "x"  # 'drop' -> 'pord'
    message = error(with_value(key, typo))
    assert f"'{key}' must be one of {allowed}, got '{typo}'" in message
    for value in allowed:  # and every allowed value is taken (a cross-key rule may still ask for more)
        try:
            parse_params(with_value(key, value))
        except UserError as e:
            assert f"'{key}'" not in str(e)


def test_the_models_hold_exactly_the_documented_choices_and_bounds():
    """A new choice or bound is added here on purpose; one that disappears fails here by name."""
    assert {k: sorted(v) for k, v in CHOICES.items()} == CHOICE_KEYS
    assert sorted(POSITIVE) == POSITIVE_KEYS


@pytest.mark.parametrize("key", POSITIVE_KEYS)
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_values(key, value):
    named = key.replace("*", DEFAULT_STUDENT)  # a student's key is named by the student
    assert f"'{named}' must be positive, got {value}" in error(with_value(key, value))


@pytest.mark.parametrize("sizes, expected", [
    ([], "'scaling.sizes' is empty"),
    ([25, -50], "'scaling.sizes' must be sample counts >= 0 (0: the untrained student), got -50"),
    ([25, 50, 25], "'scaling.sizes' repeats 25; list each sample count once"),
])
def test_bad_sizes(sizes, expected):
    assert expected in error(with_value("scaling.sizes", sizes))


def test_size_larger_than_the_pool():
    message = error(with_value("scaling.sizes", [20, 351]))
    assert "asks for 351 samples but 'data.pool_size' is 350" in message
    assert "raise data.pool_size or lower the largest size" in message
    parse_params(with_value("scaling.sizes", [20, 350]))  # equal is fine


def test_negative_source_cap():
    assert "'data.max_source_records' must be 0 (no cap) or positive" in error(
        with_value("data.max_source_records", -1))


@pytest.mark.parametrize("weights", [(0.5, 0.5, 0.5), (0.3, 0.3, 0.3), (1.2, -0.1, -0.1)])
def test_weights_must_be_non_negative_and_sum_to_one(weights):
    raw = embedded()
    raw["report"].update(weight_perplexity=weights[0], weight_pass_rate=weights[1], weight_speed=weights[2])
    message = error(raw)
    assert "must be non-negative and sum to 1" in message
    assert "'report.weight_speed'" in message


def test_weights_summing_to_one_in_floating_point():
    raw = embedded()
    raw["report"].update(weight_perplexity=0.1, weight_pass_rate=0.7, weight_speed=0.2)  # 0.9999999999999999
    parse_params(raw)


def test_cross_field_rules():
    assert "'train.schedule: steps' needs a positive 'train.max_steps'" in error(with_value("train.schedule", "steps"))
    assert "'students.pruned10.hidden_size' must be a multiple of its 'num_heads'" in error(
        with_value("students.*.num_heads", 3))


def test_check_size():
    params = Params()
    assert check_size(params, 20) == 20
    with pytest.raises(UserError, match=r"--size 30 is not in scaling.sizes \[0, 20, 40, 80, 160, 320\]"):
        check_size(params, 30)


# -----------------------------------------------------------------------------
# the file itself


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\ndata:\n  source: builtin\n  pool_size: [440\nteacher: {}\n", encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_params(path)
    message = str(e.value)
    assert message.startswith(f"{path}:5: not valid YAML")
    assert "fix the syntax" in message and "\n" not in message


def test_tab_indented_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\ndata:\n\tsource: builtin\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}:3: not valid YAML"):
        load_params(path)


def test_params_not_utf8(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes("data:\n  source: caf\u00e9.json\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8 text; save it as UTF-8"):
        load_params(path)


def test_params_missing(tmp_path):
    with pytest.raises(UserError, match="params.yaml: not found; run from the project root"):
        load_params(tmp_path / "params.yaml")


def test_error_names_the_file_it_read(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("data:\n  pool_size: -1\n")
    with pytest.raises(UserError, match=rf"^{path}: 'data.pool_size' must be positive"):
        load_params(path)


# -----------------------------------------------------------------------------
# kdscale profile


def test_profile_writes_a_valid_params_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["profile", "paper", "--params", "paper-params.yaml"])
    written = tmp_path / "paper-params.yaml"
    assert written.read_text() == profile.render("paper")
    assert load_params(written).teacher.model == "gpt2-xl"
    assert "'paper' profile" in capsys.readouterr().out

    main(["profile", "embedded"])  # the default target is params.yaml
    assert (tmp_path / "params.yaml").read_bytes() == (REPO / "params.yaml").read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_profile_fails_and_lists_the_profiles(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["profile", "nope", "--params", "out.yaml"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == "kdscale: error: unknown profile 'nope'; choose one of: embedded, paper\n"
    assert not (tmp_path / "out.yaml").exists()


# -----------------------------------------------------------------------------
# replicates


def replicated(sizes, seeds) -> dict:
    raw = with_value("scaling.replicate_sizes", sizes)
    raw["scaling"]["replicate_seeds"] = seeds
    return raw


def test_runs_are_every_student_at_every_size_then_its_replicates():
    raw = replicated([160, 320], [1, 2])
    raw["students"]["scratch4"] = {"model": "scratch", "num_layers": 4}
    params = parse_params(raw)
    runs = [r.name for r in config.runs(params)]
    assert runs[:7] == [f"pruned10-n{n}-seed0" for n in [0, 20, 40, 80, 160, 320]] + ["pruned10-n160-seed1"]
    assert runs[7:10] == ["pruned10-n160-seed2", "pruned10-n320-seed1", "pruned10-n320-seed2"]
    assert runs[10:] == [r.replace("pruned10", "scratch4") for r in runs[:10]]
    run, replica = config.check_run(params, "scratch4", 320, 2)
    assert run == Run("scratch4", 320, 2) and replica.seed == 2 and params.seed == 0  # the study's are untouched
    assert config.check_run(params, "pruned10", 20) == (Run("pruned10", 20, 0), params)
    assert Run.parse(run.name) == run and Run.parse("teacher") is None


def test_an_unknown_student_is_refused_with_the_known_ones():
    with pytest.raises(UserError, match=r"--student pruned3 is not in students \(pruned10\); add it there first"):
        config.check_run(Params(), "pruned3", 20)


@pytest.mark.parametrize("students, expected", [
    ({}, "'students' is empty; name at least one"),
    ({"pruned-3": {}}, "student name 'pruned-3' must be letters, digits, _ and . only"),
    ({"a": {"num_layerz": 3}}, "unknown key 'students.a.num_layerz' (did you mean 'students.a.num_layers'?)"),
    ({"a": 3}, "'students.a' must be a mapping, got 3"),
])
def test_bad_students(students, expected):
    assert expected in error(with_value("students", students))


@pytest.mark.parametrize("sizes, seeds, expected", [
    ([320], [], "'scaling.replicate_sizes' and 'scaling.replicate_seeds' go together"),
    ([], [1], "'scaling.replicate_sizes' and 'scaling.replicate_seeds' go together"),
    ([640], [1], "'scaling.replicate_sizes' has 640, which is not a trained size"),
    ([0], [1], "'scaling.replicate_sizes' has 0, which is not a trained size"),
    ([320], [1, 1], "'scaling.replicate_seeds' repeats 1"),
    ([320], [0, 1], "'scaling.replicate_seeds' has 0, the study's own 'seed'"),
])
def test_bad_replicates(sizes, seeds, expected):
    assert expected in error(replicated(sizes, seeds))


def test_a_seed_that_is_no_replicate_is_refused():
    params = parse_params(replicated([320], [1]))
    with pytest.raises(UserError, match=r"--size 160 --seed 1 is not a replicate: scaling.replicate_sizes is \[320\]"):
        config.check_run(params, "pruned10", 160, 1)
    with pytest.raises(UserError, match="--size 30 is not in scaling.sizes"):
        config.check_run(params, "pruned10", 30, 1)


def test_the_reference_study_params_validate():
    params = load_params(REPO / "studies/reference/params.yaml")
    assert params.scaling.sizes[:6] == [0] + [80 * 2**k for k in range(5)]  # 0 and every doubling 80..1,280
    assert [s.num_layers for s in params.students.values()] == [3, 10, 20]  # students that bracket the answer
    assert params.data.pool_size >= max(params.scaling.sizes) and params.data.source.endswith("alpaca_5000.json")
    # `make reference` resumes the sweep to the source's limit, with the closing seeds
    assert params.sweep.confirm_seeds == [1, 2] and params.sweep.max_hours >= 10
    assert params.registered_name != Params().registered_name  # its own registry entry


def test_every_lr_scheduler_choice_builds_and_a_typo_is_refused():
    import torch
    from transformers import SchedulerType, get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    for name in CHOICE_KEYS["train.lr_scheduler"]:
        get_scheduler(SchedulerType(name), optimizer, num_warmup_steps=1, num_training_steps=10)
    with pytest.raises(UserError, match=r"'train.lr_scheduler' must be one of \[.*'cosine'.*\], got 'cosin'"):
        parse_params(with_value("train.lr_scheduler", "cosin"))


def test_the_larger_adherence_set_is_answered_only_at_trained_sizes():
    assert "'eval.adherence_set_sizes' has 30, which is not in 'scaling.sizes'" in error(
        with_value("eval.adherence_set_sizes", [0, 30]))
    assert parse_params(with_value("eval.adherence_set_sizes", [0, 320])).eval.adherence_set_sizes == [0, 320]
