"""The README's shell blocks: every convzoo subcommand and option they use exists (walking the click
group, so options others add are checked too), no placeholders, and every file a command reads is
in the repo or written by an earlier command of the README."""
import os
import re
import shlex

import click
import pytest

from conftest import ROOT

SHELLS = {"bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";", "|", "&"}
MODEL_FILES = (".h5", ".keras", ".tflite", ".onnx")
IMAGE_FILES = (".jpg", ".jpeg", ".png")
KNOWN_VARIABLES = {"HOME", "PWD", "PATH", "USER"}


def shell_blocks(text):
    """(first line number, lines) of each fenced bash/sh block, in order."""
    blocks, lines, start, fence = [], None, 0, re.compile(r"^\s*```(\w*)")
    for i, line in enumerate(text.splitlines(), 1):
        m = fence.match(line)
        if m and lines is None:
            lines, start = ([] if m.group(1) in SHELLS else False), i + 1
        elif m:
            if lines:
                blocks.append((start, lines))
            lines = None
        elif lines is not False and lines is not None:
            lines.append(line)
    return blocks


def commands(lines):
    """Each simple command of a block as a token list (continuations joined, comments dropped)."""
    text = "\n".join(lines).replace("\\\n", " ")
    for line in text.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars="&|;")
        lex.whitespace_split, lex.commenters = True, "#"
        cmd = []
        for tok in lex:
            if tok in SEPARATORS:
                if cmd:
                    yield cmd
                cmd = []
            else:
                cmd.append(tok)
        if cmd:
            yield cmd


def convzoo_args(cmd):
    """The arguments after `convzoo` (or `python -m convzoo`), leading VAR=value dropped; None if the
    command is not convzoo."""
    while cmd and re.match(r"^[A-Za-z_]\w*=", cmd[0]):
        cmd = cmd[1:]
    if cmd[:1] == ["convzoo"]:
        return cmd[1:]
    if cmd[:3] == ["python", "-m", "convzoo"]:
        return cmd[3:]
    return None


def options(command):
    names = {"-h", "--help"}
    for p in command.params:
        if isinstance(p, click.Option):
            names.update(p.opts + p.secondary_opts)
    return names


def resolve(args):
    """(the click command, its path, [(option, value or None)], [arguments]); AssertionError naming
    an unknown subcommand or option."""
    from convzoo.cli import cli

    command, path, opts, positional = cli, ["convzoo"], [], []
    i = 0
    while i < len(args):
        tok = args[i]
        if tok.startswith("-") and len(tok) > 1:
            name, _, inline = tok.partition("=")
            assert name in options(command), f"`{' '.join(path)}` has no option {name}"
            param = next((p for p in command.params if name in getattr(p, "opts", []) + getattr(
                p, "secondary_opts", [])), None)
            takes_value = param is not None and not param.is_flag and not param.count
            value = inline or (args[i + 1] if takes_value and not inline and i + 1 < len(args) else None)
            opts.append((name, value))
            i += 2 if takes_value and not inline else 1
            continue
        if isinstance(command, click.Group):
            sub = command.get_command(None, tok)
            assert sub is not None, f"`{' '.join(path)}` has no subcommand {tok}"
            command, path = sub, path + [tok]
        else:
            positional.append(tok)
        i += 1
    return command, path, opts, positional


def written_by(path, opts, positional):
    """The model files a convzoo command writes, by the rules its help states."""
    from convzoo import bundled, train
    from convzoo.zoo import DEFAULT_MODEL

    given = dict(opts)
    if path[1:] == ["train"] and positional:
        model = given.get("--model") or DEFAULT_MODEL.get(positional[0])
        return {given.get("--output") or (model and train.default_output(model, positional[0]))}
    if path[1:] == ["export"] and positional:
        source = positional[0]
        if bundled.looks_like_name(source) and not os.path.exists(ROOT / source):
            source = f"models/{source}.h5"
        ext = {"tflite": ".tflite", "onnx": ".onnx"}.get(given.get("--format"), "_savedmodel")
        return {given.get("--output") or os.path.splitext(source)[0] + ext}
    return {given["--output"]} if given.get("--output") else set()


def check_files(opts, positional, written):
    for value in [v for o, v in opts if o != "--output" and v] + positional:
        for part in value.split(","):
            if part.lower().endswith(MODEL_FILES + IMAGE_FILES):
                assert (ROOT / part).exists() or os.path.normpath(part) in written, \
                    f"{part} is neither in the repo nor written by an earlier README command"


README_BLOCKS = shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_readme_has_shell_blocks():
    assert len(README_BLOCKS) >= 3


def test_readme_commands_exist_and_run_as_written():
    written, checked = set(), 0
    for start, lines in README_BLOCKS:
        assigned = {m.group(1) for line in lines for m in re.finditer(r"(?:^|\s|export\s+)([A-Za-z_]\w*)=", line)}
        for var in re.findall(r"\$\{?([A-Za-z_]\w*)", "\n".join(line.split("#")[0] for line in lines)):
            assert var in assigned | KNOWN_VARIABLES, f"README line {start}: ${var} is not set in its block"
        for cmd in commands(lines):
            args = convzoo_args(cmd)
            if args is None:  # another program (a script convzoo wrote, say): what it writes counts
                written |= {os.path.normpath(v) for o, v in zip(cmd, cmd[1:]) if o == "--output"}
                continue
            try:
                placeholders = [a for a in args if re.fullmatch(r"[A-Z][A-Z_]{2,}(\.\.\.)?", a)]
                assert not placeholders, f"placeholder {placeholders[0]}: set a variable or use a real path"
                command, path, opts, positional = resolve(args)
                check_files(opts, positional, written)
            except AssertionError as e:
                pytest.fail(f"README block at line {start}: {' '.join(cmd)}: {e}")
            outputs = {os.path.normpath(p) for p in written_by(path, opts, positional) if p}
            shipped = [p for p in outputs if (ROOT / p).exists() and "--overwrite" not in dict(opts)]
            if shipped:
                pytest.fail(f"README block at line {start}: {' '.join(cmd)}: {shipped[0]} is in the repo "
                            "already, and convzoo refuses to replace it without --overwrite")
            written |= outputs
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("text, problem", [
    ("```bash\nconvzoo trian mnist\n```", "has no subcommand trian"),
    ("```bash\nconvzoo train mnist --epoch 3\n```", "has no option --epoch"),
    ("```bash\nconvzoo data lst\n```", "has no subcommand lst"),
    ("```bash\nconvzoo evaluate mnist --data-dir DATA\n```", "placeholder DATA"),
    ("```bash\nconvzoo evaluate runs/never.h5\n```", "runs/never.h5 is neither in the repo"),
    ("```bash\nconvzoo predict photo.jpg --model mnist\n```", "photo.jpg is neither in the repo"),
    ("```sh\npip install -e . && convzoo models --dataset mnist --jsn\n```", "has no option --jsn"),
    ("```bash\nconvzoo export mnist --format tflite\n```", "models/mnist.tflite is in the repo already"),
])
def test_checker_catches(text, problem, monkeypatch):
    monkeypatch.setattr(__import__(__name__), "README_BLOCKS", shell_blocks(text))
    with pytest.raises(pytest.fail.Exception, match=re.escape(problem)):
        test_readme_commands_exist_and_run_as_written()


def test_checker_follows_files_and_variables(monkeypatch):
    text = ("```bash\nconvzoo train mnist --data-dir data --epochs 1\n"
            "convzoo evaluate runs/mnist-vgg.h5 --data-dir data && convzoo export runs/mnist-vgg.h5 --format onnx\n"
            "M=runs/mnist-vgg.onnx; echo $M\nconvzoo compare runs/mnist-vgg.h5 models/mnist.h5\n"
            "convzoo predict data/samples/mnist_9998_5.png --model runs/mnist-vgg.onnx\n"
            "python script.py --output runs/x.h5 && convzoo evaluate runs/x.h5\n```\n"
            "```bash\necho $UNSET\n```")
    monkeypatch.setattr(__import__(__name__), "README_BLOCKS", shell_blocks(text))
    with pytest.raises(AssertionError, match=r"\$UNSET is not set"):
        test_readme_commands_exist_and_run_as_written()
