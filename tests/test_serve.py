"""`convzoo serve`: a real server in a subprocess on a free 127.0.0.1 port, each route with good and
bad input; every request bounded in time, and the server still answers after the bad ones."""
import http.client
import json
import os
import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest

from conftest import ROOT, SAMPLE
from test_image_safety import _png_bomb

PHOTO = SAMPLE / "samples" / "mnist_9999_6_photo.jpg"
TIMEOUT = 60  # seconds per request (a hang fails the test, not the suite)


def start_server(tmp, *args, drain=True):
    """(process, port) of `convzoo serve --port 0 ARGS`, once it says where it listens."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", XDG_CACHE_HOME=str(tmp / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "convzoo", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(300)
    if not line or "serving" not in line[0]:
        proc.kill()
        raise AssertionError(f"server did not start: {line} {proc.stderr.read()[-2000:]}")
    if drain:
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # the request log
    return proc, int(line[0].rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("flask", reason="flask is not installed")
    proc, port = start_server(tmp_path_factory.mktemp("serve"), "--model", "mnist", "--model", "cifar10")
    yield port
    proc.terminate()
    proc.wait(30)


def request(port, method, path, body=None, headers=None):
    """(status, parsed JSON or text, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        kind = resp.getheader("Content-Type", "")
        return resp.status, json.loads(data) if "json" in kind else data.decode(), dict(resp.getheaders())
    finally:
        conn.close()


def post_json(port, path, obj):
    return request(port, "POST", path, json.dumps(obj), {"Content-Type": "application/json"})


def multipart(field, filename, data):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_status_and_metadata(server):
    code, out, _ = request(server, "GET", "/v1/models/mnist")
    assert code == 200 and out["model_version_status"][0]["state"] == "AVAILABLE"
    code, out, _ = request(server, "GET", "/v1/models/mnist/metadata")
    assert code == 200 and out["model_spec"]["name"] == "mnist"
    assert out["convzoo"]["classes"] == [str(i) for i in range(10)] and out["convzoo"]["input_shape"] == [28, 28, 1]
    dims = out["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["inputs"]["tensor_shape"]["dim"]
    assert [d["size"] for d in dims] == ["-1", "28", "28", "1"]
    for path in ("/v1/models/nope", "/v1/models/nope/metadata"):
        code, out, _ = request(server, "GET", path)
        assert code == 404 and "nope" in out["error"]


def test_predict_gives_the_probabilities_convzoo_predict_gives(server):
    from convzoo import checkpoint, predict

    path = str(ROOT / "models" / "mnist.h5")
    x = predict.to_input(str(PHOTO), checkpoint.read_meta(path))
    local = predict.predict([str(PHOTO)], path, top_k=10)[0]["predictions"]
    for instance in (x.tolist(), x[..., 0].tolist()):  # gray images may leave out the channel axis
        code, out, _ = post_json(server, "/v1/models/mnist:predict", {"instances": [instance, instance]})
        assert code == 200 and np.asarray(out["predictions"]).shape == (2, 10)
        for row in out["predictions"]:
            assert max(abs(row[int(p["label"])] - p["probability"]) for p in local) <= 1e-5


@pytest.mark.parametrize("body, why", [
    ("not json", "not JSON"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),  # nesting deeper than the parser's recursion
    (json.dumps([1, 2]), "JSON object"),
    (json.dumps({"inputs": [[0]]}), 'missing "instances"'),
    (json.dumps({"instances": []}), "non-empty"),
    (json.dumps({"instances": [[[0] * 28] * 27]}), "shape [28, 28, 1]"),
    (json.dumps({"instances": [[[0] * 28] * 28, [[0] * 27] * 28]}), "equal-shaped"),
    (json.dumps({"instances": [[["a"] * 28] * 28]}), "equal-shaped"),
    (json.dumps({"instances": [[[300] * 28] * 28]}), "0 to 255"),
    (json.dumps({"instances": [[[0] * 28] * 28] * 65}), "over the limit of 64"),
])
def test_predict_bad_input_is_a_400_with_the_reason(server, body, why):
    code, out, _ = request(server, "POST", "/v1/models/mnist:predict", body, {"Content-Type": "application/json"})
    assert code == 400 and why in out["error"], out


def test_unknown_model_is_a_404(server):
    code, out, _ = post_json(server, "/v1/models/nope:predict", {"instances": [[[0] * 28] * 28]})
    assert code == 404 and "Servable not found" in out["error"]
    code, out, _ = request(server, "POST", "/v1/models/../../etc/passwd:classify-image", b"x")
    assert code == 404


def test_a_100_mb_body_is_refused_without_reading_it(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=TIMEOUT)
    try:
        conn.putrequest("POST", "/v1/models/mnist:predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(100 * 2**20))
        conn.endheaders()
        try:
            for _ in range(100):
                conn.send(b" " * 2**20)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: the rest was never read
        resp = conn.getresponse()
        assert resp.status == 413 and "error" in json.loads(resp.read())
    except ConnectionResetError:
        pass  # the answer can be lost to the reset; what matters is the server below
    finally:
        conn.close()
    assert request(server, "GET", "/v1/models/mnist")[0] == 200


def test_a_chunked_body_over_the_cap_is_refused(server):
    chunks = (b" " * 2**20 for _ in range(20))
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=TIMEOUT)
    try:
        conn.request("POST", "/v1/models/mnist:predict", body=chunks, encode_chunked=True,
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        assert conn.getresponse().status == 413
    finally:
        conn.close()


def test_classify_image_multipart_and_raw(server):
    data = PHOTO.read_bytes()
    code, out, _ = request(server, "POST", "/v1/models/mnist:classify-image?top_k=3", *multipart("image", "x.jpg", data))
    assert code == 200 and out["predictions"][0]["label"] == "6" and len(out["predictions"]) == 3
    assert out["input"]["shape"] == [28, 28, 1] and out["input"]["png"].startswith("data:image/png;base64,")
    code, out, _ = request(server, "POST", "/v1/models/cifar10:classify-image", data, {"Content-Type": "image/jpeg"})
    assert code == 200 and out["input"]["shape"] == [32, 32, 3] and len(out["predictions"]) == 5


def test_classify_image_bad_input(server, tmp_path):
    bomb = _png_bomb(tmp_path / "bomb.png", 10_000, 10_000).read_bytes()  # 100 Mpixels in a few KB
    cases = [
        (multipart("image", "bomb.png", bomb), 400, "decompression bomb"),
        (multipart("image", "a.png", b"not an image at all"), 400, "not an image"),
        (multipart("other", "a.png", PHOTO.read_bytes()), 400, 'multipart field "image"'),
        ((b"", {"Content-Type": "image/png"}), 400, "no image"),
    ]
    for (body, headers), status, why in cases:
        code, out, _ = request(server, "POST", "/v1/models/mnist:classify-image", body, headers)
        assert code == status and why in out["error"], out
        assert "convzoo-upload" not in out["error"]  # the server's temp name is not shown
    for q in ("top_k=0", "top_k=x", "top_k=1000"):
        code, out, _ = request(server, "POST", f"/v1/models/mnist:classify-image?{q}", PHOTO.read_bytes(),
                               {"Content-Type": "image/jpeg"})
        assert code == 400 and "top_k" in out["error"]


def test_page_is_self_contained_and_foreign_hosts_are_refused(server):
    code, html, headers = request(server, "GET", "/")
    assert code == 200 and "<canvas" in html and '"mnist"' in html
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "http://" not in html and "https://" not in html and "src=\"/" not in html
    code, out, _ = request(server, "GET", "/v1/models/mnist", headers={"Host": "attacker.example"})
    assert code == 400  # a DNS-rebinding page cannot reach the loopback server
    assert request(server, "GET", "/v1/models/mnist")[0] == 200  # still serving


def test_non_loopback_host_warns_of_no_authentication(tmp_path):
    pytest.importorskip("flask", reason="flask is not installed")
    proc, port = start_server(tmp_path, "--model", "mnist", "--host", "0.0.0.0", drain=False)
    try:
        assert request(port, "GET", "/v1/models/mnist")[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "no authentication" in err
