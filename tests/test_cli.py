import json
import subprocess
import sys

import pytest

from conftest import invoke



def every_command():
    """The path of every command and group of the CLI, walked from the click group through its
    sub-groups, as click itself lists them (list_commands, get_command: lazy groups too)."""
    import click

    from convzoo.cli import cli

    paths, todo = [], [([], cli)]
    while todo:
        path, cmd = todo.pop(0)
        paths.append(path)
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd, info_name=path[-1] if path else "convzoo")
            todo += [(path + [name], cmd.get_command(ctx, name)) for name in cmd.list_commands(ctx)]
    return paths


COMMANDS = every_command()


def test_the_walk_reaches_every_subcommand():
    """Sub-groups are walked: every `data` subcommand, not only the top-level commands."""
    from convzoo.cli import cli

    top = sorted(cli.commands)
    assert [c[0] for c in COMMANDS if len(c) == 1] == top
    data = cli.commands["data"]
    assert sorted(c[1] for c in COMMANDS if c[:1] == ["data"] and len(c) == 2) == sorted(data.commands)
    assert {("data", "import"), ("data", "check"), ("data", "list")} <= {tuple(c) for c in COMMANDS}


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "convzoo")
def test_help(runner, cmd):
    res = invoke(runner, *cmd, "--help")
    assert res.exit_code == 0 and "Usage:" in res.output


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "convzoo")
def test_help_ends_with_examples_that_exist(runner, cmd):
    from test_readme import resolve

    import re

    parts = re.split(r"\n *Examples:\n", invoke(runner, *cmd, "--help").output)
    assert len(parts) == 2, f"`convzoo {' '.join(cmd)} --help` has no examples"
    lines = [line.strip() for line in parts[1].strip().splitlines()]
    assert 2 <= len(lines) <= 3 and all(line.startswith("convzoo ") for line in lines), lines
    for line in lines:
        resolve(line.split()[1:])  # every subcommand and option of the example exists


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "convzoo")
def test_every_option_shows_its_default(cmd):
    """An option that takes a value says what happens without it: a shown default, a required
    option, or "[default: ...]" in its help."""
    import click

    from test_readme import resolve

    command = resolve(cmd)[0]
    silent = [p.opts[0] for p in command.params if isinstance(p, click.Option) and not p.is_flag
              and not p.required and not (p.show_default and p.default is not None)
              and "[default: " not in (p.help or "")]
    assert not silent, f"convzoo {' '.join(cmd)}: no default in the help of {', '.join(silent)}"


def test_fast_commands_do_not_import_tensorflow(sample_data):
    code = ("import sys; from convzoo.cli import cli\n"
            "for args in (['--help'], ['models'], ['models', '--json'], ['data', 'list', '--data-dir', %r]):\n"
            "    try: cli(args, standalone_mode=False)\n"
            "    except SystemExit: pass\n"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)") % str(sample_data)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("TF False False")


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "convzoo", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "convzoo" in out.stdout


def test_models_json_lists_seed_entries(runner):
    rows = json.loads(invoke(runner, "models", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["mnist-cnn"]["source"] == "S3" and by_name["mnist-cnn"]["params"] == 3_274_634
    assert by_name["mlp"]["recipe"]["batch_size"] == 256
    assert "fashion_mnist" in by_name["mlp"]["datasets"] and "mnist" in by_name["mlp"]["datasets"]


def test_models_json_recipe_has_every_field(runner):
    """Each row's recipe: every Recipe field (validation_split, precision, ...) as the entry sets it."""
    import dataclasses

    from convzoo import zoo

    rows = json.loads(invoke(runner, "models", "--json").stdout)
    assert rows and all(r["recipe"] == dataclasses.asdict(zoo.get_spec(r["name"]).recipe) for r in rows)
    assert {r["recipe"]["validation_split"] for r in rows} >= {0.2, 0.1, 0.05}
    assert {r["recipe"]["precision"] for r in rows} == {"float32"}


def test_data_list_json(runner, sample_data, tmp_path):
    rows = {r["name"]: r for r in json.loads(invoke(runner, "data", "list", "--data-dir", sample_data,
                                                    "--json").stdout)}
    assert rows["mnist"]["found"] and rows["mnist"]["train"] == 2000 and rows["mnist"]["test"] == 500
    empty = json.loads(invoke(runner, "data", "list", "--json").stdout)
    assert not any(r["found"] for r in empty)


def test_data_show_balance_and_grid(runner, sample_data, tmp_path):
    res = invoke(runner, "data", "show", "fashion_mnist", "--data-dir", sample_data, "--output", "grid.png")
    assert res.exit_code == 0
    assert "Ankle boot" in res.output and "2,000 images" in res.output
    assert (tmp_path / "grid.png").stat().st_size > 1000
    again = invoke(runner, "data", "show", "fashion_mnist", "--data-dir", sample_data, "--output", "grid.png")
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize("args, message", [
    (["train", "mnsit"], "unknown dataset 'mnsit'; did you mean mnist"),
    (["train", "mnist", "--model", "fashion-cnn"], "built for fashion_mnist, not mnist"),
    (["train", "mnist", "--model", "mnist-cnm"], "unknown model 'mnist-cnm'; did you mean mnist-cnn"),
    (["train", "mnist", "--output", "m.txt"], "must end in .h5 or .keras"),
    (["train", "mnist", "--epochs", "2"], "mnist not found: put train-images-idx3-ubyte.gz"),
    (["evaluate", "nothere.h5"], "nothere.h5: no such checkpoint file"),
    (["predict", "x.png", "--model", "mnsit"], "unknown bundled model 'mnsit'; did you mean mnist"),
    (["data", "show", "cifar100"], "unknown dataset 'cifar100'"),
])
def test_user_errors_are_one_line(runner, args, message, monkeypatch):
    # no network for fetch-on-first-use: keras.datasets must not be reached in tests
    monkeypatch.setattr("convzoo.data.store.fetch", _offline)
    res = invoke(runner, *args)
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert res.output.strip().count("\n") == 0


def _offline(name, root):
    from convzoo.errors import DataError
    from convzoo.data import mnist

    raise DataError(f"{name} not found: {mnist.missing_message(root + '/' + name)}")


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--batch-size", "0"], ["--validation-split", "1"],
                                  ["--validation-split", "0"], ["--optimizer", "adagrad"],
                                  ["--learning-rate", "-1"], ["--limit", "0"]])
def test_bad_option_values_are_usage_errors(runner, args):
    res = invoke(runner, "train", "mnist", *args)
    assert res.exit_code == 2 and "Invalid value" in res.output


def test_existing_output_is_refused_before_training(runner, sample_data, tmp_path):
    (tmp_path / "m.h5").write_bytes(b"precious")
    res = invoke(runner, "train", "mnist", "--data-dir", sample_data, "--output", "m.h5")
    assert res.exit_code == 1 and "already exists; pass --overwrite" in res.output
    assert (tmp_path / "m.h5").read_bytes() == b"precious"


def test_cli_subprocess_error_exit_and_stderr(tmp_path):
    out = subprocess.run([sys.executable, "-m", "convzoo", "evaluate", "missing.h5"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == "Error: missing.h5: no such checkpoint file"
