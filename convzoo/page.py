"""The page `convzoo serve` answers at /: one self-contained HTML document (inline CSS and script,
no external assets), talking only to the server's own API."""
import json

# the page may reach nothing but its own server: no fonts, scripts or images from elsewhere
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")

HTML = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>convzoo serve</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{background:#243b53;color:#fff;padding:10px 20px}
header h1{font-size:18px;margin:0}
main{display:flex;flex-wrap:wrap;gap:20px;padding:20px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:14px 16px;min-width:300px;flex:0 1 auto}
#models-box,#drop-box{max-width:300px}
h2{font-size:15px;margin:0 0 10px}
select{font-size:15px;padding:3px}
#drop{border:2px dashed #8aa;border-radius:6px;padding:22px;text-align:center;color:#566;cursor:pointer}
#drop.over{background:#e6f0f5;border-color:#246}
#pad{border:1px solid #999;touch-action:none;cursor:crosshair;background:#fff;display:block}
#preview{max-width:260px;max-height:200px;display:block;margin-top:8px}
#seen{width:140px;height:140px;image-rendering:pixelated;border:1px solid #999;background:#000}
.bar{display:flex;align-items:center;gap:8px;margin:3px 0}
.bar .l{width:110px;text-align:right;overflow:hidden;white-space:nowrap}
.bar .t{display:block;flex:1;background:#eee;height:18px;border-radius:3px;min-width:160px}
.bar .f{display:block;background:#3a7ca5;height:18px;border-radius:3px}
.bar.top .f{background:#d9822b}
.bar .p{width:56px;font-variant-numeric:tabular-nums}
#err{color:#b00;min-height:1.2em}
code{background:#eee;padding:1px 4px;border-radius:3px}
small{color:#667}
</style></head>
<body>
<header><h1>convzoo serve</h1></header>
<main>
<section id="models-box"><h2>Model</h2>
 <select id="model" aria-label="model"></select>
 <p id="about"><small></small></p>
 <p><small>API: <code>POST /v1/models/<span class="mn"></span>:predict</code> with
 <code>{"instances": [...]}</code> (raw 0..255 pixels), <code>:classify-image</code> with an image file.</small></p>
</section>
<section id="draw-box"><h2 id="draw-title">Draw a digit</h2>
 <canvas id="pad" width="280" height="280" aria-label="drawing pad"></canvas>
 <p><button id="clear" type="button">Clear</button> <small>dark ink on white, as on paper</small></p>
</section>
<section id="drop-box"><h2>Or drop an image</h2>
 <div id="drop" tabindex="0">Drop an image here, or click to choose one
  <input id="file" type="file" accept="image/*" hidden></div>
 <img id="preview" alt="">
</section>
<section id="result-box"><h2>Top classes</h2>
 <div id="bars"></div>
 <p id="err" role="alert"></p>
 <h2>What the model saw</h2>
 <img id="seen" alt="the preprocessed input">
 <p><small id="seen-shape"></small></p>
</section>
</main>
<script>
const MODELS = __MODELS__;
const $ = id => document.getElementById(id);
let busy = false, again = false, lastBlob = null;

function current() { return MODELS.find(m => m.name === $("model").value); }
function small(m) { return m.input_shape[0] === 28 && m.input_shape[1] === 28; }

function chooseModel() {
  const m = current();
  $("about").firstChild.textContent = `${m.dataset}: ${m.classes.length} classes, input ` +
    `${m.input_shape.join("x")}` + (m.test_accuracy ? `, test accuracy ${(100 * m.test_accuracy).toFixed(2)}%` : "");
  document.querySelectorAll(".mn").forEach(e => e.textContent = m.name);
  $("draw-box").style.display = small(m) ? "" : "none";
  $("draw-title").textContent = m.dataset === "mnist" ? "Draw a digit" : "Draw";
  $("bars").innerHTML = ""; $("err").textContent = "";
  if (lastBlob) classify(lastBlob);
}

function showBars(preds) {
  const box = $("bars");
  box.innerHTML = "";
  preds.forEach((p, i) => {
    const row = document.createElement("div");
    row.className = "bar" + (i === 0 ? " top" : "");
    row.dataset.label = p.label;
    const pct = (100 * p.probability).toFixed(1);
    row.innerHTML = '<span class="l"></span><span class="t"><span class="f"></span></span><span class="p"></span>';
    row.querySelector(".l").textContent = p.label;
    row.querySelector(".f").style.width = pct + "%";
    row.querySelector(".p").textContent = pct + "%";
    box.appendChild(row);
  });
}

async function classify(blob) {
  lastBlob = blob;
  if (busy) { again = true; return; }  // one request in flight; the newest drawing goes next
  busy = true;
  try {
    const m = current();
    const form = new FormData();
    form.append("image", blob, "image.png");
    const r = await fetch(`/v1/models/${encodeURIComponent(m.name)}:classify-image?top_k=5`, {method: "POST", body: form});
    const out = await r.json();
    if (!r.ok) { $("err").textContent = out.error || r.statusText; return; }
    $("err").textContent = "";
    showBars(out.predictions);
    $("seen").src = out.input.png;
    $("seen-shape").textContent = "input " + out.input.shape.join("x") + " (0..255)";
    document.body.dataset.top = out.predictions[0].label;
  } catch (e) {
    $("err").textContent = "request failed: " + e;
  } finally {
    busy = false;
    if (again) { again = false; classify(lastBlob); }
  }
}

// drawing pad: dark ink on white, sent as PNG while drawing (throttled to one request at a time)
const pad = $("pad"), ctx = pad.getContext("2d");
let drawing = false, inked = false;
function clearPad() { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height); inked = false; }
function at(e) { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; }
function send() { if (inked) pad.toBlob(b => classify(b), "image/png"); }
pad.addEventListener("pointerdown", e => { drawing = true; pad.setPointerCapture(e.pointerId); const [x, y] = at(e); ctx.beginPath(); ctx.moveTo(x, y); });
pad.addEventListener("pointermove", e => {
  if (!drawing) return;
  const [x, y] = at(e);
  ctx.lineTo(x, y); ctx.strokeStyle = "#000"; ctx.lineWidth = 20; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.stroke();
  inked = true; send();
});
pad.addEventListener("pointerup", () => { drawing = false; send(); });
$("clear").addEventListener("click", () => { clearPad(); lastBlob = null; $("bars").innerHTML = ""; });

// drop or choose an image
const drop = $("drop");
function take(file) {
  if (!file) return;
  $("preview").src = URL.createObjectURL(file);
  classify(file);
}
drop.addEventListener("click", () => $("file").click());
drop.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
$("file").addEventListener("change", e => take(e.target.files[0]));
["dragenter", "dragover"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", e => take(e.dataTransfer.files[0]));

for (const m of MODELS) {
  const o = document.createElement("option");
  o.value = m.name; o.textContent = `${m.name} (${m.dataset})`;
  $("model").appendChild(o);
}
const first = MODELS.find(m => m.dataset === "mnist") || MODELS.find(small) || MODELS[0];
$("model").value = first.name;
$("model").addEventListener("change", chooseModel);
clearPad(); chooseModel();
window.convzooBusy = () => busy || again;  // for tests: a classification still to come
document.body.dataset.ready = "1";
</script>
</body></html>
"""


def render(models):
    """The page for these model descriptions (Served.info() dicts)."""
    # json.dumps, then no "</script>" or "<!--" can come out of a class name
    data = json.dumps(models).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return HTML.replace("__MODELS__", data)
