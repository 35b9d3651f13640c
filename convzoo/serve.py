"""`convzoo serve`: TensorFlow Serving's REST API and a page to draw or drop an image, on Flask.

Routes (NAME is a served model's name):
    GET  /                                 the page (self-contained: no external assets)
    GET  /v1/models/NAME                   status, as TF Serving
    GET  /v1/models/NAME/metadata          input shape, classes, preprocessing, signature
    POST /v1/models/NAME:predict           {"instances": [...]} raw 0..255 -> {"predictions": [...]}
    POST /v1/models/NAME:classify-image    an image file (multipart field `image`, or the raw body)
                                           -> top-k labels, through predict's preprocessing
Bad input answers {"error": "..."} with a 4xx status and the server keeps serving. Models run
through their LiteRT twins when there are (predict.open_model), so the server starts without
TensorFlow. Bodies are capped (MAX_BODY), instances per request too (MAX_INSTANCES), uploaded images
by images.MAX_PIXELS; no route reads or writes a path a client names.
"""
import base64
import io
import json
import os
import tempfile
import threading

import numpy as np

from convzoo import heads, images
from convzoo.errors import ConvzooError

MAX_BODY = 16 * 2**20  # bytes per request: 64 CIFAR-10 instances as JSON, or a large photo
MAX_INSTANCES = 64
MAX_TOP_K = 100
DECODES = 2  # images decoded at once: a 50-megapixel upload takes about 150 MB while decoded
TIMEOUT = 30  # seconds a client may take to send its request


class Served:
    """One model behind the API: its runner (not thread-safe, hence the lock) and metadata."""

    def __init__(self, name, path, run, meta):
        self.name, self.path, self.run, self.meta = name, path, run, meta
        self.lock = threading.Lock()

    def outputs(self, x):
        with self.lock:
            return np.asarray(self.run(x))

    def info(self):
        m = self.meta
        return {"name": self.name, "dataset": m["dataset"], "classes": m["classes"],
                "input_shape": m["input_shape"], "head": m["head"], "preprocess": m["preprocess"],
                "test_accuracy": (m.get("test") or {}).get("accuracy")}


def load(specs, log):
    """{name: Served} for each --model (a bundled name or a file); names must be unique."""
    from convzoo import bundled, predict

    served = {}
    for spec in specs:
        path = bundled.resolve(spec)
        name = spec if bundled.looks_like_name(spec) else os.path.splitext(os.path.basename(path))[0]
        if name in served:
            raise ConvzooError(f"two served models would be called {name}; rename one of the files")
        run, meta = predict.open_model(path, log)
        served[name] = Served(name, path, run, meta)
    return served


def _error(code, message):
    from flask import jsonify

    resp = jsonify({"error": message})
    resp.status_code = code
    return resp


def parse_instances(body, meta):
    """{"instances": [...]} -> a float32 batch of the model's input shape, values 0..255;
    ValueError with the reason otherwise."""
    if not isinstance(body, dict):
        raise ValueError('the body must be a JSON object with "instances"')
    if "instances" not in body:
        raise ValueError('missing "instances" (the row format; "inputs" is not supported)')
    inst = body["instances"]
    if not isinstance(inst, list) or not inst:
        raise ValueError('"instances" must be a non-empty list')
    if len(inst) > MAX_INSTANCES:
        raise ValueError(f"{len(inst)} instances, over the limit of {MAX_INSTANCES} per request")
    try:
        x = np.asarray(inst, dtype=np.float32)
    except (ValueError, TypeError):
        raise ValueError("instances must be equal-shaped nested lists of numbers") from None
    h, w, c = meta["input_shape"]
    if c == 1 and x.shape[1:] == (h, w):
        x = x[..., None]  # gray images may leave out the channel axis
    if x.shape[1:] != (h, w, c):
        raise ValueError(f"each instance must have shape [{h}, {w}, {c}] (raw 0..255 pixels), "
                         f"got {list(x.shape[1:])}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 255:
        raise ValueError("pixel values must be numbers from 0 to 255")
    return x


def _png_data_url(arr):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def classify_bytes(served, data, top_k, decodes):
    """Top-k labels for an uploaded image's bytes, through predict's preprocessing, and the input
    the model saw (a PNG data URL). The bytes go to a private temp file, removed at once."""
    from convzoo import predict

    fd, tmp = tempfile.mkstemp(prefix="convzoo-upload-", suffix=".img")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with decodes:
            x = predict.to_input(tmp, served.meta)
    finally:
        os.remove(tmp)
    p = predict.probabilities(served.outputs(x[None].astype(np.float32)), served.meta["head"])[0]
    classes = served.meta["classes"]
    order = np.argsort(-p)[:max(1, min(top_k, len(classes)))]
    return {"model": served.name,
            "predictions": [{"label": classes[i], "probability": round(float(p[i]), 6)} for i in order],
            "input": {"shape": list(x.shape), "png": _png_data_url(x)}}


def _body(request):
    """The request body, at most MAX_BODY bytes (a chunked body has no length to refuse up front)."""
    from werkzeug.exceptions import RequestEntityTooLarge

    data = request.get_data(cache=False)
    if len(data) >= MAX_BODY:
        raise RequestEntityTooLarge()
    return data


def create_app(served, trusted_hosts=None):
    """The Flask app serving `served` ({name: Served})."""
    from flask import Flask, Response, jsonify, request
    from werkzeug.exceptions import HTTPException

    app = Flask("convzoo")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, MAX_FORM_MEMORY_SIZE=MAX_BODY, MAX_FORM_PARTS=10,
                      TRUSTED_HOSTS=trusted_hosts)
    app.json.sort_keys = False
    decodes = threading.BoundedSemaphore(DECODES)

    def model(name):
        if name not in served:
            raise KeyError(name)
        return served[name]

    @app.errorhandler(KeyError)
    def unknown_model(e):
        return _error(404, f"Servable not found for request: {e.args[0]!s:.100} "
                           f"(served: {', '.join(served)})")

    @app.errorhandler(HTTPException)
    def http_error(e):
        return _error(e.code or 500, e.description or e.name)

    @app.errorhandler(ConvzooError)
    def bad_input(e):
        return _error(400, str(e))

    @app.errorhandler(Exception)
    def bug(e):
        app.logger.exception("internal error")
        return _error(500, f"internal error ({type(e).__name__})")

    @app.after_request
    def headers(resp):
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/")
    def page():
        from convzoo import page as html

        resp = Response(html.render([s.info() for s in served.values()]), mimetype="text/html")
        resp.headers["Content-Security-Policy"] = html.CSP
        return resp

    @app.get("/v1/models")
    def models():
        return jsonify({"models": [s.info() for s in served.values()]})

    @app.get("/v1/models/<name>")
    def status(name):
        model(name)
        return jsonify({"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})

    @app.get("/v1/models/<name>/metadata")
    def metadata(name):
        s = model(name)
        h, w, c = s.meta["input_shape"]
        units = heads.units(s.meta["head"], len(s.meta["classes"]))
        sig = {"inputs": {"inputs": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [
                   {"size": "-1"}, {"size": str(h)}, {"size": str(w)}, {"size": str(c)}]}}},
               "outputs": {"outputs": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [
                   {"size": "-1"}, {"size": str(units)}]}}},
               "method_name": "tensorflow/serving/predict"}
        return jsonify({"model_spec": {"name": name, "signature_name": "", "version": "1"},
                        "metadata": {"signature_def": {"signature_def": {"serving_default": sig}}},
                        "convzoo": s.info() | {"input": "float32 NHWC holding 0..255"}})

    @app.post("/v1/models/<name>:predict")
    def predict_route(name):
        s = model(name)
        try:
            body = json.loads(_body(request))
        except (ValueError, RecursionError):  # RecursionError: [[[[...]]]] nested thousands deep
            return _error(400, "the body is not JSON")
        try:
            x = parse_instances(body, s.meta)
        except ValueError as e:
            return _error(400, str(e))
        return jsonify({"predictions": s.outputs(x).tolist()})

    @app.post("/v1/models/<name>:classify-image")
    def classify_route(name):
        s = model(name)
        try:
            top_k = int(request.args.get("top_k", 5))
        except ValueError:
            return _error(400, "top_k must be a whole number")
        if not 1 <= top_k <= MAX_TOP_K:
            return _error(400, f"top_k must be from 1 to {MAX_TOP_K}")
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("image")
            if upload is None:
                return _error(400, 'send the image as the multipart field "image"')
            data = upload.read(MAX_BODY + 1)
        else:
            data = _body(request)
        if not data:
            return _error(400, "no image in the request")
        try:
            return jsonify(classify_bytes(s, data, top_k, decodes))
        except ConvzooError as e:
            # the temp name means nothing to the client: keep only the reason
            return _error(400, "image: " + str(e).split(": ", 1)[-1])

    return app


def trusted(host, port):
    """Host headers a loopback server answers (a DNS-rebinding page gets 400), None elsewhere."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return ["127.0.0.1", "localhost", "::1", "[::1]"]
    return None


def make_server(app, host, port):
    """Werkzeug's threaded WSGI server, with a timeout on slow clients."""
    from werkzeug.serving import WSGIRequestHandler, make_server as werkzeug_server

    class Handler(WSGIRequestHandler):
        timeout = TIMEOUT

        def log_request(self, code="-", size="-"):  # one short line per request, on stderr
            super().log_request(code, size)

    return werkzeug_server(host, port, app, threaded=True, request_handler=Handler)
