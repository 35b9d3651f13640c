"""predict --output results.csv|results.jsonl: one row per image, atomic, never overwritten unasked."""
import csv
import json

from conftest import SAMPLE, invoke


def _folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for f in sorted((SAMPLE / "samples").glob("mnist_*"))[:3]:
        (d / f.name).write_bytes(f.read_bytes())
    (d / "broken.png").write_bytes(b"not an image")
    return d


def test_csv_and_jsonl_rows_with_errors(runner, tmp_path):
    d = _folder(tmp_path)
    res = invoke(runner, "predict", d, "--model", "mnist", "--top-k", "2", "--output", "out.csv")
    assert res.exit_code == 1 and "wrote 4 row(s)" in res.stderr and res.stdout == ""
    rows = list(csv.DictReader(open(tmp_path / "out.csv", newline="")))
    assert list(rows[0]) == ["file", "label_1", "probability_1", "label_2", "probability_2", "error"]
    broken = [r for r in rows if r["file"].endswith("broken.png")][0]
    assert broken["error"] and not broken["label_1"]
    good = [r for r in rows if not r["error"]]
    assert len(good) == 3
    for r in good:
        if r["file"].endswith(".png"):  # mnist_9996_3.png: the test image of a 3, read right
            assert r["label_1"] == r["file"].rsplit("_", 1)[-1][:-4]
    invoke(runner, "predict", d, "--model", "mnist", "--output", "out.jsonl")
    lines = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    assert len(lines) == 4 and {"file", "predictions", "error"} == set(lines[0])


def test_output_refuses_to_overwrite_and_bad_suffix(runner, tmp_path):
    (tmp_path / "out.csv").write_text("mine")
    res = invoke(runner, "predict", SAMPLE / "samples", "--model", "mnist", "--output", "out.csv")
    assert res.exit_code == 1 and "already exists; pass --overwrite" in res.output
    assert (tmp_path / "out.csv").read_text() == "mine"
    res = invoke(runner, "predict", SAMPLE / "samples", "--model", "mnist", "--output", "out.txt")
    assert res.exit_code == 1 and "must end in .csv or .jsonl" in res.output
    res = invoke(runner, "predict", SAMPLE / "samples" / "mnist_9996_3.png", "--model", "mnist",
                 "--output", "out.csv", "--overwrite")
    assert res.exit_code == 0 and (tmp_path / "out.csv").read_text().count("\n") == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
