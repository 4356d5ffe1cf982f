"""Reading manifest files as kubectl reads them: values, refusals, documents, and no crashes."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bertsweep import cli
from bertsweep import manifest as manifests
from bertsweep.api import ManifestError
from bertsweep.manifest import JSONValue

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
BERTSWEEP = Path(sys.executable).with_name("bertsweep")

# Both parsers where PyYAML has libyaml; the pure-Python fallback must read the same values.
PARSERS = [True, False] if yaml.__with_libyaml__ else [False]


def values(text: str, c_parser: bool | None = None) -> JSONValue:
    """The one document of `text`, as the reader makes it."""
    [(_, content)] = manifests.parse(text, "test.yaml", c_parser=c_parser)
    return content


def refusal(text: str | bytes, c_parser: bool | None = None) -> str:
    with pytest.raises(ManifestError) as caught:
        manifests.parse(text, "test.yaml", c_parser=c_parser)
    message = str(caught.value)
    assert "\n" not in message
    return message


def quickstart() -> dict[str, Any]:
    document = yaml.safe_load(QUICKSTART.read_text())
    assert isinstance(document, dict)
    return document


def with_spec(text: str, **spec_lines: str) -> str:
    """The quickstart manifest's text with some lines replaced (`key: ...` or the parameter
    `name: key`, by their new text), and `text` after it."""
    lines = QUICKSTART.read_text().splitlines()
    for key, new in spec_lines.items():
        [at] = [
            i
            for i, line in enumerate(lines)
            if line.strip().startswith(f"{key}:") or f"name: {key}," in line
        ]
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        lines[at] = indent + new
    return "\n".join(lines) + "\n" + text


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str | bytes, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ---- Scalars: go-yaml v2's reading, then the JSON the API server decodes ---------------------


@pytest.mark.parametrize("c_parser", PARSERS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-5", 1e-5),  # PyYAML: the string "1e-5"
        ("1.0e-5", 1e-5),
        ("-2.5E-3", -2.5e-3),
        (".5", 0.5),
        ("1E5", 100000),  # a whole float64 reaches the API server as a JSON integer
        ("2.0", 2),
        ("-0.0", 0),
        ("1e18", 10**18),
        ("1e20", 1e20),  # whole, but beyond int64: the server holds a float64
        ("1e21", 1e21),
        ("0.1", 0.1),
        ("42", 42),
        ("+5", 5),
        ("-17", -17),
        ("1_000", 1000),
        ("0x1F", 31),
        ("-0x10", -16),
        ("0o17", 15),
        ("017", 15),  # a leading 0 is octal, as in Go
        ("09", 9),  # no octal, so go-yaml reads the float 9
        ("0b101", 5),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("9223372036854775808", float(2**63)),
        ("99999999999999999999", 1e20),
        ("1e400", "1e400"),  # strconv.ParseFloat overflows: go-yaml keeps the text
        ("1:20", "1:20"),  # PyYAML: the base-60 integer 80
        ("0x", "0x"),
        (".iNf", ".iNf"),
        ("2001-12-14", "2001-12-14"),  # PyYAML: a date
        ("2001-12-14T21:59:43.10Z", "2001-12-14T21:59:43.10Z"),  # PyYAML: a datetime
        ("yes", True),
        ("Yes", True),
        ("YES", True),
        ("y", True),  # PyYAML: the string "y"
        ("Y", True),
        ("on", True),
        ("true", True),
        ("True", True),
        ("no", False),
        ("n", False),
        ("N", False),
        ("off", False),
        ("OFF", False),
        ("FALSE", False),
        ("yEs", "yEs"),
        ("~", None),
        ("null", None),
        ("NULL", None),
        ("'yes'", "yes"),
        ('"1e-5"', "1e-5"),
        ("'2.0'", "2.0"),
        ("|\n  2", "2"),
        ("!!str 5", "5"),
        ('!!int "7"', 7),
        ("!!float 3", 3),
        ("!!float 2.5", 2.5),
        ("!!bool yes", True),
        ("!!null ~", None),
        ("!!timestamp 2001-12-14", "2001-12-14"),
        ("!!binary aGVsbG8=", "hello"),
        ("!custom 5", "5"),
        ("<<", "<<"),
    ],
)
def test_scalars_are_read_as_kubectl_reads_them(text: str, expected: Any, c_parser: bool) -> None:
    got = values(f"value: {text}", c_parser)
    assert isinstance(got, dict)
    assert got["value"] == expected
    assert type(got["value"]) is type(expected), (text, got["value"])


@pytest.mark.parametrize("c_parser", PARSERS)
@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("a: .inf", "a: .inf"),
        ("a: [1, -.Inf]", "a[1]: -.inf"),
        ("spec: {parameters: [{max: .NaN}]}", "spec.parameters[0].max: .nan"),
        ("a: !!float .inf", "a: .inf"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(
    text: str, field: str, c_parser: bool
) -> None:
    message = refusal(text, c_parser)
    assert field in message and "line 1" in message and "not a finite number" in message


@pytest.mark.parametrize("c_parser", PARSERS)
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: !!int x", "cannot decode !!str `x` as a !!int"),
        ("a: !!int 1.5", "cannot decode !!float `1.5` as a !!int"),
        ("a: !!bool 1", "cannot decode !!int `1` as a !!bool"),
        ("a: !!timestamp soon", "as a !!timestamp"),
        ("a: !!binary '%%%'", "invalid base64"),
        ("a: 0x" + "F" * 300, "too large"),
    ],
)
def test_values_kubectl_cannot_send_are_refused(text: str, problem: str, c_parser: bool) -> None:
    assert problem in refusal(text, c_parser)


@pytest.mark.parametrize("c_parser", PARSERS)
def test_keys_as_sigs_k8s_yaml_converts_them(c_parser: bool) -> None:
    text = "{1: a, yes: b, 1.5: d, 0.1: e, 1e6: f, 2001-01-01: g, '007': h, 1e-7: i, off: j}"
    assert values(text, c_parser) == {
        "1": "a",
        "true": "b",
        "1.5": "d",
        "0.1": "e",
        "1e+06": "f",
        "2001-01-01": "g",
        "007": "h",
        "1e-07": "i",
        "false": "j",
    }


@pytest.mark.parametrize("c_parser", PARSERS)
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("~: 1", "a mapping key is null"),
        ("? [1]\n: 2", "a mapping key must be a scalar, not a sequence"),
        ("? {a: 1}\n: 2", "a mapping key must be a scalar, not a mapping"),
        ("a: &s [1]\n*s : 2", "a mapping key must be a scalar; *s is not one"),
        ("18446744073709551615: x", "too large a number"),
    ],
)
def test_keys_json_cannot_have_are_refused(text: str, problem: str, c_parser: bool) -> None:
    assert problem in refusal(text, c_parser)


@pytest.mark.parametrize("c_parser", PARSERS)
def test_duplicate_keys_are_refused_with_the_key_and_both_lines(c_parser: bool) -> None:
    message = refusal("spec:\n  maxTrials: 4\n  parallelism: 2\n  maxTrials: 8\n", c_parser)
    assert message == "test.yaml, line 4: spec: duplicate key 'maxTrials' (first at line 2)"
    # `1` and "1" are one JSON key: one of the two values would be lost without a word.
    assert "duplicate key '1'" in refusal("1: a\n'1': b", c_parser)


# ---- Anchors, aliases and merge keys -------------------------------------------------------


@pytest.mark.parametrize("c_parser", PARSERS)
def test_anchors_aliases_and_merge_keys_work(c_parser: bool) -> None:
    text = """
base: &base {image: trainer:1, args: [--fast]}
plain: *base
override:
  <<: *base
  image: trainer:2
several: {<<: [{a: 1}, {a: 2, b: 2}], c: 3}
late: {image: mine, <<: *base}
scalar: &n 5
again: *n
"""
    got = values(text, c_parser)
    assert got == {
        "base": {"image": "trainer:1", "args": ["--fast"]},
        "plain": {"image": "trainer:1", "args": ["--fast"]},
        "override": {"image": "trainer:2", "args": ["--fast"]},
        "several": {"a": 1, "b": 2, "c": 3},  # earlier mappings of a merged list win
        "late": {"image": "trainer:1", "args": ["--fast"]},  # go-yaml v2: `<<` sets in place
        "scalar": 5,
        "again": 5,
    }


@pytest.mark.parametrize("c_parser", PARSERS)
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: *nope", "unknown anchor 'nope' referenced"),
        ("a: &x [1, *x]", "anchor 'x' value contains itself"),
        ("a: {<<: 5}", "the merge key `<<` at line 1 needs a mapping"),
        ("s: &s [{x: 1}]\nb: {<<: *s}", "needs a mapping or a sequence of mappings"),
        ("a: {<<: [{x: 1}, 2]}", "needs a mapping or a sequence of mappings"),
    ],
)
def test_bad_aliases_and_merges_are_refused(text: str, problem: str, c_parser: bool) -> None:
    assert problem in refusal(text, c_parser)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        name, previous = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("c_parser", PARSERS)
def test_an_alias_bomb_is_refused_before_it_is_expanded(c_parser: bool) -> None:
    message = refusal(billion_laughs(), c_parser)
    assert "document contains excessive aliasing" in message
    # The same in a real sweep, its anchors under an extension field.
    bomb = "".join(f"  {line}\n" for line in billion_laughs().splitlines())
    text = QUICKSTART.read_text().replace("kind: BertSweep\n", f"kind: BertSweep\nx-lol:\n{bomb}")
    assert "excessive aliasing" in refusal(text + "  trialTemplate: {args: *i}\n", c_parser)


@pytest.mark.parametrize("c_parser", PARSERS)
def test_many_ordinary_aliases_are_fine(c_parser: bool) -> None:
    text = "base: &b {x: 1, y: [1, 2, 3]}\nall:\n" + "  - *b\n" * 300
    got = values(text, c_parser)
    assert isinstance(got, dict) and isinstance(got["all"], list) and len(got["all"]) == 300


# ---- Text and nesting -------------------------------------------------------------------


def test_invalid_utf8_is_one_line_naming_where() -> None:
    message = refusal(b"apiVersion: v1\nkind: \xff\xfeBertSweep\n")
    assert message == (
        "test.yaml is not UTF-8 text: byte 0xff at line 2, column 7 (save it as UTF-8)"
    )


def test_utf8_and_utf16_with_a_byte_order_mark_are_read() -> None:
    text = QUICKSTART.read_text()
    for data in (b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16")):
        contents = manifests.load(data, "bom.yaml")
        assert [d.name for d in contents.sweeps] == ["quickstart"]


@pytest.mark.parametrize("c_parser", PARSERS)
@pytest.mark.parametrize("depth", [101, 150, 5000, 100_000])
def test_deep_nesting_is_one_line(depth: int, c_parser: bool) -> None:
    message = refusal("a: " + "[" * depth + "]" * depth, c_parser)
    assert "nested more than 100 levels deep" in message or "maximum nesting depth" in message
    assert len(message) < 400


@pytest.mark.parametrize("c_parser", PARSERS)
def test_nesting_through_aliases_counts(c_parser: bool) -> None:
    deep = "[" * 60 + "]" * 60
    assert values(f"a: &d {deep}\nb: *d", c_parser) is not None
    message = refusal(f"a: &d {deep}\nb: {'[' * 50}*d{']' * 50}", c_parser)
    assert "nested more than 100 levels deep (through *d)" in message


@pytest.mark.parametrize("c_parser", PARSERS)
def test_syntax_errors_and_control_characters_are_one_line(c_parser: bool) -> None:
    assert "line 1, column 5" in refusal("a: b: c", c_parser)
    assert "U+0001" in refusal("a: \x01", c_parser)
    assert "line 2" in refusal("a: [1, 2\nb: 3", c_parser)


# ---- Through `bertsweep validate`: what the API server would refuse --------------------------


def test_yaml_numbers_kubectl_accepts_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyYAML read 1e-5 as a string, a date as a datetime and 8.0 as a float: all refused."""
    text = with_spec(
        "",
        learning_rate="- {name: learning_rate, type: float, min: 5e-5, max: 5e-4, scale: log}",
        maxTrials="maxTrials: 8.0",
        weight_decay="weight_decay: 1e-2",
    ).replace("  fixed:\n", "  fixed:\n    run_name: 2024-06-01\n")
    code, out, err = run_cli(capsys, "validate", str(write(tmp_path, text)))
    assert (code, out, err) == (0, "quickstart: valid\n", "")
    [document] = manifests.read(tmp_path / "sweep.yaml").sweeps
    assert isinstance(document.content, dict)
    spec = document.content["spec"]
    assert isinstance(spec, dict)
    assert spec["maxTrials"] == 8 and spec["fixed"] == {
        "run_name": "2024-06-01",
        "num_train_epochs": 2,
        "weight_decay": 0.01,
        "warmup_ratio": 0.1,
    }


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"maxTrials": "maxTrials: true"}, "spec.maxTrials: Input should be a valid integer"),
        ({"parallelism": 'parallelism: "2"'}, "spec.parallelism: Input should be a valid integer"),
        ({"maxTrials": "maxTrials: 8.5"}, "spec.maxTrials: Input should be a valid integer"),
        ({"maxLength": "maxLength: 64.0.1"}, "spec.dataset.maxLength: Input should be a valid"),
        ({"maxTrials": "maxTrials: .inf"}, "spec.maxTrials: .inf is not a finite number"),
        ({"maxEvalSamples": "maxEvalSamples: 1e400"}, "spec.dataset.maxEvalSamples"),
    ],
)
def test_wrong_types_are_refused_as_the_api_server_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: dict[str, str], field: str
) -> None:
    code, out, err = run_cli(capsys, "validate", str(write(tmp_path, with_spec("", **line))))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and field in err


def test_an_unquoted_yes_among_labels_is_a_boolean_and_refused_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = with_spec("", labels="labels: [yes, no]")
    code, _, err = run_cli(capsys, "validate", str(write(tmp_path, text)))
    assert code == 2
    assert "spec.dataset.labels[0]: Input should be a valid string" in err
    assert "quote it" in err
    quoted = with_spec("", labels="labels: ['yes', 'no']")
    assert run_cli(capsys, "validate", str(write(tmp_path, quoted)))[0] == 0


def test_anchors_and_merge_keys_in_a_real_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = with_spec(
        "",
        learning_rate="- &lr {name: learning_rate, type: float, min: 5e-5, max: 5e-4, scale: log}",
        num_hidden_layers="- {<<: *lr, name: adam_epsilon, min: 1e-9, max: 1e-7}",
    )
    code, out, _ = run_cli(capsys, "validate", str(write(tmp_path, text)))
    assert (code, out) == (0, "quickstart: valid\n")
    [document] = manifests.read(tmp_path / "sweep.yaml").sweeps
    sweep = manifests.check(manifests.read(tmp_path / "sweep.yaml"), document)
    epsilon = sweep.spec.parameter("adam_epsilon")
    assert epsilon is not None and (epsilon.min, epsilon.max) == (1e-9, 1e-7)
    assert (epsilon.type.value, epsilon.scale.value) == ("float", "log")


# ---- Several documents ---------------------------------------------------------------------

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"


def joined(*documents: str) -> tuple[str, list[int]]:
    """The documents as one file, and the line each starts at as the reader reports it: the
    first YAML line of the first, the `---` line of the others."""
    text = "\n---\n".join(documents)
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line[:1] not in ("#", ""))
    return text, [first] + [
        "\n---\n".join(documents[:k]).count("\n") + 2 for k in range(1, len(documents))
    ]


def second_sweep(**changes: str) -> str:
    return with_spec("", **changes).replace("name: quickstart", "name: second")


def test_validate_checks_every_bertsweep_and_notes_what_it_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line = joined(QUICKSTART.read_text(), "# nothing", CONFIGMAP, "null", second_sweep())
    code, out, err = run_cli(capsys, "validate", str(write(tmp_path, text)))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"quickstart: valid (document 1 at line {line[0]})",
        f"document 3 at line {line[2]}: ConfigMap settings skipped (not a BertSweep)",
        f"second: valid (document 5 at line {line[4]})",
    ]


def test_validate_names_the_document_of_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line = joined(
        QUICKSTART.read_text(), CONFIGMAP, second_sweep(maxTrials="maxTrials: true"), "[1, 2]"
    )
    code, out, err = run_cli(capsys, "validate", str(write(tmp_path, text)))
    assert code == 2
    assert out.splitlines()[0] == f"quickstart: valid (document 1 at line {line[0]})"
    assert err.splitlines() == [
        f"error: document 3 at line {line[2]}: spec.maxTrials: Input should be a valid integer",
        f"error: document 4 at line {line[3]}: a Kubernetes object must be a mapping, not a list",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "holds no BertSweep document"),
        ("---\n---\n", "holds no BertSweep document"),
        (CONFIGMAP, "holds no BertSweep document (only ConfigMap settings)"),
    ],
)
def test_validate_refuses_a_file_without_a_bertsweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    code, out, err = run_cli(capsys, "validate", str(write(tmp_path, text)))
    assert code == 2 and out == "" and problem in err and len(err.splitlines()) == 1


def test_run_takes_the_only_bertsweep_or_refuses_to_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line = joined(QUICKSTART.read_text(), CONFIGMAP, second_sweep())
    path = write(tmp_path, text)
    code, out, err = run_cli(capsys, "run", str(path))
    assert code == 2 and out == ""
    assert err == (
        f"error: {path} holds 2 BertSweep documents, quickstart (document 1 at line "
        f"{line[0]}), second (document 3 at line {line[2]}): choose one with --sweep NAME\n"
    )
    code, _, err = run_cli(capsys, "run", str(path), "--sweep", "third")
    assert code == 2 and "holds no BertSweep named 'third'; it holds quickstart" in err

    contents = manifests.read(path)
    assert manifests.select(contents, "second").name == "second"
    assert manifests.select(contents, prefer="quickstart").name == "quickstart"
    alone = manifests.load(QUICKSTART.read_text() + "---\n" + CONFIGMAP, "two.yaml")
    assert manifests.select(alone).name == "quickstart"
    twice = manifests.load(QUICKSTART.read_text() + "---\n" + QUICKSTART.read_text(), "t.yaml")
    with pytest.raises(ManifestError, match="2 BertSweep documents named 'quickstart'"):
        manifests.select(twice, "quickstart")


def test_list_documents_are_read_item_by_item() -> None:
    sweeps = [quickstart(), {**quickstart(), "metadata": {"name": "second"}}]
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [*sweeps, {"a": 1}]})
    contents = manifests.load(text, "list.yaml")
    assert [d.name for d in contents.sweeps] == ["quickstart", "second", None]
    outcomes = manifests.validate(contents)
    assert [o.manifest is not None for o in outcomes] == [True, True, False]
    assert outcomes[2].error is not None
    assert outcomes[2].error.startswith("document 1 at line 1 items[2]:\n  apiVersion: Field")


def test_report_reads_the_sweep_of_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "\n---\n".join([QUICKSTART.read_text(), second_sweep()]))
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"sweep": "second", "phase": "Succeeded", "trials": []}))
    code, out, err = run_cli(capsys, "report", str(path), str(result))
    assert (code, err) == (0, "") and "second: Succeeded" in out
    result.write_text(json.dumps({"sweep": "gone", "phase": "Succeeded", "trials": []}))
    assert run_cli(capsys, "report", str(path), str(result))[0] == 2
    assert run_cli(capsys, "report", str(path), str(result), "--sweep", "second")[0] == 0


# ---- Size -----------------------------------------------------------------------------------


def test_a_manifest_of_several_megabytes_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values_text = "".join(f"        - choice-{i:06d}-{'x' * 24}\n" for i in range(100_000))
    long_text = "y" * 1_000_000
    parameter = (
        f"    - name: tokenizer_choice\n      type: categorical\n      values:\n{values_text}"
    )
    text = (
        QUICKSTART.read_text()
        .replace("  fixed:\n", parameter + "  fixed:\n")
        .replace("name: quickstart", "name: big\n  annotations: {note: " + long_text + "}")
    )
    assert len(text.encode()) > 4_000_000
    code, out, err = run_cli(capsys, "validate", str(write(tmp_path, text)))
    assert (code, out, err) == (0, "big: valid\n", "")


def test_a_file_larger_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifests, "MAX_BYTES", 1000)
    with pytest.raises(ManifestError, match="is larger than"):
        manifests.read(write(tmp_path, QUICKSTART.read_text()))


def test_the_two_parsers_agree() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml: only the pure-Python parser")
    text = QUICKSTART.read_text() + "---\n" + CONFIGMAP + "---\n" + billion_laughs(2)
    assert manifests.parse(text, "a", c_parser=True) == manifests.parse(text, "a", c_parser=False)


# ---- No traceback, whatever the file ----------------------------------------------------------

WEIRD: list[Any] = [
    True,
    False,
    None,
    "2",
    "",
    "x" * 100_000,
    "ünïcödé ✓ 😀 \u202e",
    -1,
    0,
    10**30,
    -(10**30),
    1e308,
    2**63,
    3.5,
    [],
    {},
    [1, "a", None],
    {"a": 1},
    "yes",
    "1e-5",
    "\x00\x07",
]
SNIPPETS = [
    "&a ",
    "*a",
    "*undefined",
    "!!int ",
    "!!binary ",
    "!!python/object:os.system ",
    "<<: ",
    "? ",
    "- ",
    "{",
    "[",
    "]",
    "}",
    "'",
    '"',
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "\t",
    ": ",
    "|",
    ">",
    "#",
    ",",
    "@",
    "`",
    ".inf",
    "-.nan",
    "1e400",
    "9" * 400,
    "0x" + "F" * 40,
    "~",
    "y",
    "2001-01-01",
    "[" * 3000,
]
JUNK = [b"\xff", b"\xfe\xff", b"\x00", b"\xc3", b"\xed\xa0\x80", b"\x1b[31m", b"\r", b"\x85"]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*path, i))
    return found


def _structural(rng: random.Random, base: dict[str, Any]) -> bytes:
    document = copy.deepcopy(base)
    path = rng.choice(_paths(document)[1:])
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    operation = rng.randrange(6)
    if operation == 0:
        parent[last] = copy.deepcopy(rng.choice(WEIRD))
    elif operation == 1:
        del parent[last]
    elif operation == 2:
        parent[last] = [parent[last]]
    elif operation == 3:
        value = parent[last]
        parent[last] = list(value.items()) if isinstance(value, dict) else {"v": value}
    elif operation == 4:
        nested: Any = "leaf"
        for _ in range(rng.choice([20, 99, 101, 180])):
            nested = {"n": nested} if rng.random() < 0.5 else [nested]
        parent[last] = nested
    else:
        parent[last] = rng.choice([-(10**6), 10**6, -0.5, 1e-300, 2**64, "-1"])
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=rng.random() < 0.5).encode()


def _textual(rng: random.Random, text: bytes) -> bytes:
    operation = rng.randrange(7)
    at = rng.randrange(len(text))
    if operation == 0:
        return text[:at]
    if operation == 1:
        flipped = bytearray(text)
        for _ in range(rng.randint(1, 5)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return bytes(flipped)
    if operation == 2:
        return text[:at] + rng.choice(JUNK) * rng.randint(1, 3) + text[at:]
    if operation == 3:
        return text[:at] + rng.choice(SNIPPETS).encode() + text[at:]
    lines = text.split(b"\n")
    line = rng.randrange(len(lines))
    if operation == 4:
        lines.insert(line, lines[line])  # a duplicate key, most often
    elif operation == 5:
        del lines[line]
    else:
        lines[line] = b" " * rng.randint(1, 3) + lines[line]
    return b"\n".join(lines)


HANDWRITTEN: list[bytes] = [
    b"",
    b"---\n",
    b"just a scalar",
    b"[1, 2, 3]",
    b"\xff\xfe\x00\x00a\x00\x00\x00",
    "a: b".encode("utf-16-le"),
    billion_laughs().encode(),
    b"a: " + b"[" * 100_000,
    b"a:\n" + b"".join(b" " * i + b"- \n" for i in range(1, 2000)),
    QUICKSTART.read_bytes() + b"  maxTrials: 3\n",
    QUICKSTART.read_bytes().replace(b"kind: BertSweep", b"kind: [BertSweep]"),
    QUICKSTART.read_bytes().replace(b"metadata:", b"metadata: 5\nx:"),
    QUICKSTART.read_bytes().replace(b"apiVersion:", b"apiVersion: !!binary AAAA\nx:"),
    b"apiVersion: v1\nkind: List\nitems: 5\n",
    b"apiVersion: v1\nkind: List\nitems: [1, [2], null]\n",
    b"? !!binary AAAA\n: 1\n",
    b"&a a: *a\n",
    b"a: &a {<<: *a}\n",
]


def mutants() -> list[tuple[str, bytes]]:
    """A few hundred deterministic variants of the quickstart manifest, good and bad."""
    rng = random.Random(20250601)
    base, text = quickstart(), QUICKSTART.read_bytes()
    found = [(f"handwritten-{i}", data) for i, data in enumerate(HANDWRITTEN)]
    found += [(f"structural-{i}", _structural(rng, base)) for i in range(200)]
    found += [(f"textual-{i}", _textual(rng, text)) for i in range(200)]
    return found


def test_mutated_manifests_end_as_valid_or_as_a_manifest_error() -> None:
    """What `bertsweep validate` does, in process, without cli's safety net: any exception
    but ManifestError is a bug in the reader or in the API's validators."""
    outcomes = {"valid": 0, "invalid": 0, "refused": 0}
    for name, data in mutants():
        for c_parser in PARSERS if name.endswith("0") else [None]:
            try:
                results = manifests.validate(manifests.load(data, name, c_parser=c_parser))
            except ManifestError as error:
                assert str(error), name
                outcomes["refused"] += 1
                continue
            for result in results:
                assert result.skipped or (result.manifest is None) != (result.error is None)
                outcomes["valid" if result.manifest is not None else "invalid"] += 1
    # The variants reach every outcome, so the test exercises the whole path.
    assert min(outcomes.values()) > 20, outcomes


def test_mutated_manifests_through_the_cli_exit_0_or_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, data in mutants()[::7]:
        code, _, err = run_cli(capsys, "validate", str(write(tmp_path, data)))
        assert code in (0, 2), name
        assert (code == 2) == err.startswith("error: "), (name, err)


def test_an_unexpected_exception_while_validating_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(document: Any) -> Any:
        raise TypeError("a validator's bug\nover two lines")

    monkeypatch.setattr(manifests, "parse_manifest", broken)
    path = write(tmp_path, QUICKSTART.read_text())
    for command in (["validate", str(path)], ["run", str(path)]):
        code, out, err = run_cli(capsys, *command)
        assert code == 2 and out == ""
        assert err == (
            f"error: {path}: unexpected TypeError while reading the manifest: a validator's "
            "bug over two lines (a bug in bertsweep: please report it)\n"
        )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"apiVersion: v1\nkind: \xff\n", "is not UTF-8 text: byte 0xff at line 2, column 7"),
        (b"a: " + b"[" * 5000 + b"]" * 5000, "maximum nesting depth"),
        (b"spec:\n  resources: " + b"[" * 150 + b"]" * 150, "nested more than 100 levels"),
        (billion_laughs().encode(), "document contains excessive aliasing"),
        (QUICKSTART.read_bytes().replace(b"maxTrials: 8", b"maxTrials: true"), "spec.maxTrials"),
        (bytes(range(256)) * 4, "error: "),
    ],
)
def test_bertsweep_validate_exits_2_without_a_traceback(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = write(tmp_path, data)
    done = subprocess.run(
        [str(BERTSWEEP), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and message in done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""
