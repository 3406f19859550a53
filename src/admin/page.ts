/**
 * The live status page (GET /): one self-contained HTML document, no external resources
 * (works offline). It polls /status and /rates once a second and draws each peer's
 * messages per second in and out over the last RATE_HISTORY_S seconds as inline SVG.
 * Every value is written with textContent (peer names and errors are never parsed as HTML).
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mqtt-dht-bridge</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
.key{font-family:ui-monospace,monospace;font-size:12px;opacity:.7}
main{padding:16px 20px;display:grid;gap:16px}
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002}
h2{font-size:14px;margin:0 0 8px;text-transform:uppercase;letter-spacing:.05em;color:#5a6478}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 10px 4px 0;white-space:nowrap}
th{font-weight:600;color:#5a6478;font-size:12px}
.pill{display:inline-block;border-radius:9px;padding:0 8px;font-weight:600;font-size:12px}
.up{background:#d7f5e0;color:#106b2f}.down{background:#fbe0e0;color:#9b1c1c}
.chart{display:flex;gap:16px;flex-wrap:wrap}
.chart figure{margin:0}
.chart figcaption{font-size:12px;color:#5a6478}
svg{background:#fbfcfd;border:1px solid #e3e6ec;border-radius:4px}
.in{stroke:#2563eb}.out{stroke:#d97706}
.legend span{margin-right:12px;font-size:12px}
#err{color:#9b1c1c}
</style></head>
<body>
<header><h1 id="site">…</h1><span class="key" id="key"></span>
<span>broker: <span id="broker" class="pill">…</span></span>
<span>DHT: <span id="dht">…</span></span><span id="err"></span></header>
<main>
<section><h2>Peers</h2>
<table><thead><tr><th>peer</th><th>state</th><th>since</th><th>address</th><th>RTT</th><th>in/s</th><th>out/s</th><th>in</th><th>out</th><th>backlog</th><th>last error</th></tr></thead>
<tbody id="peers"></tbody></table></section>
<section><h2>Messages per second, last 5 minutes</h2>
<div class="legend"><span style="color:#2563eb">&#9644; in (from the peer)</span><span style="color:#d97706">&#9644; out (to the peer)</span></div>
<div class="chart" id="charts"></div></section>
<section><h2>Dropped messages by reason</h2><table><tbody id="drops"></tbody></table></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
function ago(iso) { if (!iso) return "-"; const s = Math.round((Date.now() - Date.parse(iso)) / 1000); return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago"; }
function render(s) {
  $("site").textContent = s.site.name + " (" + s.site.state + ")";
  $("key").textContent = s.site.key;
  const b = $("broker"); b.textContent = s.broker.connected ? "connected" : s.broker.state + (s.broker.error ? ": " + s.broker.error : ""); b.className = "pill " + (s.broker.connected ? "up" : "down");
  $("dht").textContent = s.dht.nodes + " nodes" + (s.dht.bootstrapped ? "" : " (not bootstrapped)");
  const body = $("peers"); body.replaceChildren();
  for (const p of s.peers) {
    const tr = document.createElement("tr"); tr.id = "peer-" + p.name; tr.dataset.state = p.state;
    cell(tr, p.name).title = p.key;
    const st = document.createElement("td"); const pill = document.createElement("span"); pill.className = "pill " + (p.state === "up" ? "up" : "down"); pill.textContent = p.state; st.appendChild(pill); tr.appendChild(st);
    cell(tr, ago(p.since)); cell(tr, p.address || "-"); cell(tr, p.rttMs === null ? "-" : p.rttMs + " ms");
    cell(tr, String(p.rateIn), "rate-in"); cell(tr, String(p.rateOut), "rate-out");
    cell(tr, String(p.in), "count-in"); cell(tr, String(p.out), "count-out"); cell(tr, String(p.backlog), "backlog"); cell(tr, p.lastError || "-");
    body.appendChild(tr);
  }
  const drops = $("drops"); drops.replaceChildren();
  const entries = Object.entries(s.drops);
  if (entries.length === 0) { const tr = document.createElement("tr"); cell(tr, "none"); drops.appendChild(tr); }
  for (const [k, v] of entries) { const tr = document.createElement("tr"); cell(tr, k); cell(tr, String(v)); drops.appendChild(tr); }
}
const NS = "http://www.w3.org/2000/svg";
function line(svg, values, max, cls, w, h) {
  if (values.length < 2) return;
  const step = w / 299, x0 = w - (values.length - 1) * step;
  const pts = values.map((v, i) => (x0 + i * step).toFixed(1) + "," + (h - 2 - (v / max) * (h - 14)).toFixed(1)).join(" ");
  const pl = document.createElementNS(NS, "polyline"); pl.setAttribute("points", pts); pl.setAttribute("fill", "none"); pl.setAttribute("stroke-width", "1.5"); pl.setAttribute("class", cls); svg.appendChild(pl);
}
function charts(r) {
  const box = $("charts"); box.replaceChildren();
  for (const [name, series] of Object.entries(r.peers)) {
    const w = 420, h = 110, max = Math.max(1, ...series.in, ...series.out);
    const fig = document.createElement("figure"); fig.id = "chart-" + name;
    const svg = document.createElementNS(NS, "svg"); svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    const t = document.createElementNS(NS, "text"); t.setAttribute("x", 4); t.setAttribute("y", 11); t.setAttribute("font-size", 10); t.setAttribute("fill", "#5a6478"); t.textContent = "max " + max + "/s"; svg.appendChild(t);
    line(svg, series.in, max, "in", w, h); line(svg, series.out, max, "out", w, h);
    const cap = document.createElement("figcaption"); cap.textContent = name + ": " + series.in.reduce((a, b) => a + b, 0) + " in, " + series.out.reduce((a, b) => a + b, 0) + " out in the window";
    fig.appendChild(svg); fig.appendChild(cap); box.appendChild(fig);
  }
}
async function tick() {
  try {
    const [s, r] = await Promise.all([fetch("status", { cache: "no-store" }).then((x) => x.json()), fetch("rates", { cache: "no-store" }).then((x) => x.json())]);
    render(s); charts(r); $("err").textContent = ""; document.body.dataset.updated = s.time;
  } catch (e) { $("err").textContent = "site not answering"; }
}
tick(); setInterval(tick, 1000);
</script></body></html>
`
