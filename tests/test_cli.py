import json

from click.testing import CliRunner

from cli import main

COMMANDS = [
    "data",
    "finetune-teacher",
    "extract-teacher",
    "cache",
    "train-student",
    "evaluate",
    "plot-attention",
    "run",
    "demo",
    "export",
    "profile",
]


def test_help_lists_every_command_with_a_description():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f"  {command} " in result.output


def test_every_command_shows_its_defaults():
    runner = CliRunner()
    for command in ["extract-teacher", "train-student", "run", "finetune-teacher"]:
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "[default:" in result.output
    for group, command in [("data", "synth"), ("data", "noisy-digits"), ("cache", "verify")]:
        assert runner.invoke(main, [group, command, "--help"]).exit_code == 0


def test_data_synth_then_train_student_from_the_command_line(tmp_path):
    runner = CliRunner()
    data = tmp_path / "data"
    made = runner.invoke(
        main,
        [
            "data",
            "synth",
            "--out",
            str(data),
            "--classes",
            "2",
            "--length",
            "1",
            "--per-class",
            "4,2,2",
        ],
    )
    assert made.exit_code == 0, made.output
    assert made.output.strip().splitlines()[-1] == str(data)
    trained = runner.invoke(
        main,
        [
            "train-student",
            "--data",
            str(data),
            "--student",
            "tc-resnet8",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "run" / "best.pt").is_file()
    base = ["train-student", "--data", str(data), "--epochs", "1", "--device", "cpu"]
    wide = runner.invoke(
        main, [*base, "--student", "tc-resnet8", "--width", "1.5", "--out", str(tmp_path / "wide")]
    )
    assert wide.exit_code == 0, wide.output
    sizes = [
        json.loads((tmp_path / run / "metrics.json").read_text())["parameters"]
        for run in ("run", "wide")
    ]
    assert sizes[1] > 1.8 * sizes[0]  # 1.5x the channels: about 2.25x the weights
    refused = runner.invoke(
        main, [*base, "--student", "att-rnn", "--width", "2", "--out", str(tmp_path / "x")]
    )
    assert refused.exit_code == 1 and "att-rnn takes no width_multiplier" in refused.output
    head = [*base, "--student", "tc-resnet8", "--attention-dim", "16"]
    narrow = runner.invoke(main, [*head, "--out", str(tmp_path / "head")])
    assert narrow.exit_code == 0, narrow.output
    assert json.loads((tmp_path / "head" / "config.json").read_text())["attention_dim"] == 16


def test_run_widens_the_tc_resnets_and_refuses_a_width_for_other_students(
    synth_data, tiny_teacher, tmp_path
):
    base = ["run", "--data", str(synth_data), "--teacher", str(tiny_teacher), "--seeds", "1"]
    base += ["--kd", "none", "--epochs", "1", "--device", "cpu", "--width", "1.5"]
    refused = CliRunner().invoke(main, [*base, "--students", "tc-resnet8,att-rnn", "--out", "x"])
    assert refused.exit_code == 1 and "att-rnn takes no width_multiplier" in refused.output
    wide = CliRunner().invoke(main, [*base, "--students", "tc-resnet8", "--out", str(tmp_path)])
    assert wide.exit_code == 0, wide.output
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    assert run["parameters"] > 1.8 * 65_168  # TC-ResNet8's own size at 40 features


def test_tkd_errors_are_one_line_without_traceback(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "train-student",
            "--data",
            str(tmp_path),
            "--student",
            "att-rnn",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_choices_and_defaults_come_from_the_registries():
    from pipeline.student.architectures import STUDENTS
    from pipeline.student.losses import DEFAULT_KD_WEIGHT, KD_MODES, KD_WEIGHT_GRID
    from pipeline.teacher.presets import PRESETS

    train = {p.name: p for p in main.commands["train-student"].params}
    assert list(train["student"].type.choices) == list(STUDENTS)
    assert list(train["kd"].type.choices) == list(KD_MODES)
    assert train["kd_weight"].default == DEFAULT_KD_WEIGHT
    run = {p.name: p for p in main.commands["run"].params}
    assert "kd_weight" not in run  # a sweep's lambdas are --kd-weights
    assert run["kd_weights"].default == ",".join(f"{w:g}" for w in KD_WEIGHT_GRID)
    finetune = CliRunner().invoke(main, ["finetune-teacher", "--help"], terminal_width=200)
    assert all(name in finetune.output for name in PRESETS)
