// herald dashboard (/): live figures from /v1/stats/live (Server-Sent Events,
// one `stats` event a second). The stats are totals since the server started;
// rates come from successive samples. Charts are drawn on <canvas> by the
// small LineChart below (no libraries).
"use strict";

(() => {
  // Uncaught errors are kept where the browser test can read them.
  const errors = (window.__heraldErrors = window.__heraldErrors || []);
  window.addEventListener("error", (e) => errors.push(String(e.message || e)));
  window.addEventListener("unhandledrejection", (e) => errors.push(String(e.reason)));

  const WINDOW_MS = 120 * 1000; // charts show the last two minutes
  const GAP_MS = 5000; // samples further apart than this break the line
  const STALE_MS = 3500; // no event for this long: marked stale
  const PROTOCOLS = [
    ["nats", "NATS"],
    ["redis", "Redis"],
    ["mqtt", "MQTT"],
    ["websocket", "WebSocket"],
    ["sse", "SSE"],
  ];

  const $ = (id) => document.getElementById(id);

  // ---------- formatting ----------

  const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

  function fmtInt(n) {
    return Number.isFinite(n) ? intFmt.format(n) : "–";
  }

  function trimNum(v, digits) {
    return Number(v.toFixed(digits)).toString();
  }

  // 0.4, 12, 1.2k, 3.4M
  function fmtCount(v) {
    if (!Number.isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return `${trimNum(v / 1e9, a >= 1e10 ? 0 : 1)}G`;
    if (a >= 1e6) return `${trimNum(v / 1e6, a >= 1e7 ? 0 : 1)}M`;
    if (a >= 1e4) return `${trimNum(v / 1e3, a >= 1e5 ? 0 : 1)}k`;
    if (a >= 100 || a === 0) return intFmt.format(Math.round(v));
    if (a >= 10) return trimNum(v, 0);
    return trimNum(v, 1);
  }

  const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

  function byteScale(v) {
    let i = 0;
    while (i < BYTE_UNITS.length - 1 && Math.abs(v) >= 1024 ** (i + 1)) i++;
    return i;
  }

  function fmtBytes(v) {
    if (!Number.isFinite(v)) return "–";
    const i = byteScale(v);
    const x = v / 1024 ** i;
    return `${i === 0 ? Math.round(x) : trimNum(x, x >= 100 ? 0 : 1)} ${BYTE_UNITS[i]}`;
  }

  function fmtDuration(secs) {
    if (!Number.isFinite(secs)) return "–";
    const d = Math.floor(secs / 86400);
    const h = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const s = Math.floor(secs % 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(s).padStart(2, "0")}s`;
    return `${s}s`;
  }

  // ---------- chart ----------

  // Round axis steps: 1, 2, 2.5, 5 × 10^n, up to at least `min`.
  function niceTicks(max, min) {
    const top = Math.max(max, min);
    const raw = top / 4;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    const ticks = [];
    for (let v = 0; v <= top + step * 1e-9; v += step) ticks.push(v);
    if (ticks[ticks.length - 1] < top - step * 1e-9) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }

  // Axis units: counts in plain/k/M, bytes in B/KiB/MiB.
  // `min`: the smallest top of the axis (no quarter bytes).
  const AXIS = {
    count(max) {
      if (max >= 1e6) return { div: 1e6, suffix: "M", min: 1 };
      if (max >= 1e4) return { div: 1e3, suffix: "k", min: 1 };
      return { div: 1, suffix: "", min: 1 };
    },
    bytes(max) {
      const i = byteScale(max);
      return { div: 1024 ** i, suffix: ` ${BYTE_UNITS[i]}`, min: i === 0 ? 4 : 1 };
    },
  };

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  class LineChart {
    // series: [{label, color: "--css-var"}]; unit: "count" | "bytes";
    // value(v): the legend/tooltip text of one value.
    constructor(canvas, { series, unit, value }) {
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.series = series;
      this.unit = unit;
      this.value = value;
      this.points = []; // {t, v: [..]} or {t, gap: true}
      this.now = 0;
      this.hoverX = null;
      this.scheduled = false;
      new ResizeObserver(() => this.schedule()).observe(canvas);
      canvas.addEventListener("pointermove", (e) => {
        this.hoverX = e.offsetX;
        this.schedule();
      });
      canvas.addEventListener("pointerleave", () => {
        this.hoverX = null;
        this.schedule();
      });
      window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.schedule());
    }

    setData(points, now) {
      this.points = points;
      this.now = now;
      this.schedule();
    }

    schedule() {
      if (this.scheduled) return;
      this.scheduled = true;
      requestAnimationFrame(() => {
        this.scheduled = false;
        this.draw();
      });
    }

    draw() {
      const { canvas, ctx } = this;
      const dpr = window.devicePixelRatio || 1;
      const w = canvas.clientWidth;
      const h = canvas.clientHeight;
      if (!w || !h) return;
      if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
        canvas.width = Math.round(w * dpr);
        canvas.height = Math.round(h * dpr);
      }
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);

      const font = getComputedStyle(document.body).fontFamily;
      const color = {
        text: cssVar("--text"),
        muted: cssVar("--muted"),
        faint: cssVar("--faint"),
        grid: cssVar("--grid"),
        axis: cssVar("--axis"),
        surface: cssVar("--surface"),
        border: cssVar("--border-strong"),
      };
      const seriesColor = this.series.map((s) => cssVar(s.color));

      const start = this.now - WINDOW_MS;
      const visible = this.points.filter((p) => p.t >= start - 1000);
      let max = 0;
      for (const p of visible) if (!p.gap) for (const v of p.v) max = Math.max(max, v);
      const axis = AXIS[this.unit](max);
      const ticks = niceTicks(max / axis.div, axis.min);
      const yTop = ticks[ticks.length - 1] * axis.div;

      // Layout: legend on top, y labels on the left, x labels below.
      ctx.font = `12px ${font}`;
      const yLabels = ticks.map((t) => `${trimNum(t, 2)}${axis.suffix}`);
      const labelW = Math.max(...yLabels.map((l) => ctx.measureText(l).width));
      const plot = { left: Math.ceil(labelW) + 14, right: w - 10, top: 34, bottom: h - 24 };
      const pw = plot.right - plot.left;
      const ph = plot.bottom - plot.top;
      if (pw < 40 || ph < 30) return;
      const x = (t) => plot.left + ((t - start) / WINDOW_MS) * pw;
      const y = (v) => plot.bottom - (v / yTop) * ph;

      // Grid and y axis labels.
      ctx.lineWidth = 1;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ticks.forEach((t, i) => {
        const yy = Math.round(y(t * axis.div)) + 0.5;
        ctx.strokeStyle = i === 0 ? color.axis : color.grid;
        ctx.beginPath();
        ctx.moveTo(plot.left, yy);
        ctx.lineTo(plot.right, yy);
        ctx.stroke();
        ctx.fillStyle = color.faint;
        ctx.fillText(yLabels[i], plot.left - 8, yy);
      });

      // X axis: a tick every 30 seconds, counted back from the newest sample.
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (let ago = 0; ago <= WINDOW_MS; ago += 30000) {
        const xx = Math.round(x(this.now - ago)) + 0.5;
        ctx.strokeStyle = color.axis;
        ctx.beginPath();
        ctx.moveTo(xx, plot.bottom);
        ctx.lineTo(xx, plot.bottom + 4);
        ctx.stroke();
        const label = ago === 0 ? "now" : ago % 60000 === 0 ? `-${ago / 60000}m` : `-${ago / 1000}s`;
        ctx.fillStyle = color.faint;
        ctx.textAlign = ago === 0 ? "right" : ago === WINDOW_MS ? "left" : "center";
        ctx.fillText(label, ago === 0 ? plot.right : ago === WINDOW_MS ? plot.left : xx, plot.bottom + 7);
      }

      // Series: a soft area and a line each; gaps break both.
      ctx.save();
      ctx.beginPath();
      ctx.rect(plot.left, plot.top - 2, pw, ph + 2);
      ctx.clip();
      const runs = [];
      let run = [];
      for (const p of visible) {
        if (p.gap) {
          if (run.length) runs.push(run);
          run = [];
        } else {
          run.push(p);
        }
      }
      if (run.length) runs.push(run);
      this.series.forEach((_, si) => {
        for (const r of runs) {
          ctx.beginPath();
          r.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v[si])) : ctx.moveTo(x(p.t), y(p.v[si]))));
          if (r.length === 1) ctx.lineTo(x(r[0].t) + 1, y(r[0].v[si]));
          ctx.lineTo(x(r[r.length - 1].t), plot.bottom);
          ctx.lineTo(x(r[0].t), plot.bottom);
          ctx.closePath();
          const grad = ctx.createLinearGradient(0, plot.top, 0, plot.bottom);
          grad.addColorStop(0, withAlpha(seriesColor[si], 0.18));
          grad.addColorStop(1, withAlpha(seriesColor[si], 0.01));
          ctx.fillStyle = grad;
          ctx.fill();
        }
      });
      this.series.forEach((_, si) => {
        ctx.strokeStyle = seriesColor[si];
        ctx.lineWidth = 2;
        ctx.lineJoin = "round";
        ctx.lineCap = "round";
        for (const r of runs) {
          ctx.beginPath();
          r.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v[si])) : ctx.moveTo(x(p.t), y(p.v[si]))));
          ctx.stroke();
        }
      });
      ctx.restore();

      // The newest sample: a dot on each line.
      const last = [...visible].reverse().find((p) => !p.gap);
      if (last && visible[visible.length - 1] === last) {
        this.series.forEach((_, si) => {
          ctx.fillStyle = seriesColor[si];
          ctx.strokeStyle = color.surface;
          ctx.lineWidth = 2;
          ctx.beginPath();
          ctx.arc(x(last.t), y(last.v[si]), 3.5, 0, Math.PI * 2);
          ctx.fill();
          ctx.stroke();
        });
      }

      // Legend with the newest values.
      ctx.textBaseline = "middle";
      ctx.textAlign = "left";
      let lx = plot.left;
      const ly = 12;
      this.series.forEach((s, si) => {
        ctx.fillStyle = seriesColor[si];
        roundRect(ctx, lx, ly - 2, 14, 4, 2);
        ctx.fill();
        lx += 20;
        ctx.font = `12px ${font}`;
        ctx.fillStyle = color.muted;
        ctx.fillText(s.label, lx, ly);
        lx += ctx.measureText(s.label).width + 6;
        const val = last ? this.value(last.v[si]) : "–";
        ctx.font = `600 12px ${font}`;
        ctx.fillStyle = color.text;
        ctx.fillText(val, lx, ly);
        lx += ctx.measureText(val).width + 20;
      });

      if (!last) {
        ctx.font = `13px ${font}`;
        ctx.fillStyle = color.faint;
        ctx.textAlign = "center";
        ctx.fillText("Waiting for data…", plot.left + pw / 2, plot.top + ph / 2);
        return;
      }

      // Hover: the nearest sample's values.
      if (this.hoverX !== null && this.hoverX >= plot.left && this.hoverX <= plot.right) {
        let best = null;
        for (const p of visible) {
          if (p.gap) continue;
          if (!best || Math.abs(x(p.t) - this.hoverX) < Math.abs(x(best.t) - this.hoverX)) best = p;
        }
        if (best) this.drawTooltip(best, x, y, plot, color, seriesColor, font);
      }
    }

    drawTooltip(p, x, y, plot, color, seriesColor, font) {
      const { ctx } = this;
      const px = Math.round(x(p.t)) + 0.5;
      ctx.strokeStyle = color.axis;
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(px, plot.top);
      ctx.lineTo(px, plot.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      this.series.forEach((_, si) => {
        ctx.fillStyle = color.surface;
        ctx.strokeStyle = seriesColor[si];
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(px, y(p.v[si]), 3.5, 0, Math.PI * 2);
        ctx.fill();
        ctx.stroke();
      });
      const lines = [new Date(p.t).toLocaleTimeString(), ...this.series.map((s, si) => `${s.label}  ${this.value(p.v[si])}`)];
      ctx.font = `12px ${font}`;
      const bw = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 20;
      const bh = lines.length * 17 + 10;
      let bx = px + 10;
      if (bx + bw > plot.right) bx = px - 10 - bw;
      const by = plot.top + 4;
      ctx.fillStyle = color.surface;
      ctx.strokeStyle = color.border;
      ctx.lineWidth = 1;
      roundRect(ctx, bx, by, bw, bh, 6);
      ctx.fill();
      ctx.stroke();
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      lines.forEach((l, i) => {
        ctx.fillStyle = i === 0 ? color.muted : seriesColor[i - 1];
        ctx.fillText(l, bx + 10, by + 7 + i * 17);
      });
    }
  }

  function roundRect(ctx, x, y, w, h, r) {
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(x, y, w, h, r);
    else ctx.rect(x, y, w, h);
  }

  // "#4f46e5" or "rgb(…)" with an alpha.
  function withAlpha(c, a) {
    if (c.startsWith("#")) {
      let hex = c.slice(1);
      if (hex.length === 3) hex = [...hex].map((ch) => ch + ch).join("");
      const n = parseInt(hex, 16);
      return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
    }
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (m) {
      const [r, g, b] = m[1].split(/[ ,/]+/);
      return `rgba(${r}, ${g}, ${b}, ${a})`;
    }
    return c;
  }

  // ---------- page ----------

  const rateChart = new LineChart($("rate-chart"), {
    unit: "count",
    series: [
      { label: "In", color: "--series-1" },
      { label: "Out", color: "--series-2" },
    ],
    value: (v) => `${fmtCount(v)}/s`,
  });
  const bytesChart = new LineChart($("bytes-chart"), {
    unit: "bytes",
    series: [
      { label: "In", color: "--series-1" },
      { label: "Out", color: "--series-2" },
    ],
    value: (v) => `${fmtBytes(v)}/s`,
  });

  const rates = []; // {t, v: [in, out]} messages per second, or {t, gap}
  const byteRates = []; // same, bytes per second
  let prev = null; // {t, s}: the sample rates are computed from
  let samples = 0;
  let lastEventAt = 0;

  const connRows = new Map();
  function connRow(proto, label) {
    let row = connRows.get(proto);
    if (row) return row;
    const li = document.createElement("li");
    li.className = "conn-row";
    li.dataset.proto = proto;
    const name = document.createElement("span");
    name.className = "proto";
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    bar.append(fill);
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = "0";
    li.append(name, bar, count);
    $("connections").append(li);
    row = { li, fill, count };
    connRows.set(proto, row);
    return row;
  }
  for (const [proto, label] of PROTOCOLS) connRow(proto, label);

  function num(v) {
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
  }

  function ingest(s, t) {
    if (!s || typeof s !== "object") return;
    samples += 1;
    document.body.dataset.samples = String(samples);

    if (prev) {
      const p = prev.s;
      // The server's clock when it sends one (uptime_ms), else arrival times.
      const serverDt = (num(s.uptime_ms) - num(p.uptime_ms)) / 1000;
      const precise = Number.isFinite(s.uptime_ms) && Number.isFinite(p.uptime_ms) && serverDt > 0;
      const dt = precise ? serverDt : (t - prev.t) / 1000;
      const reset =
        num(s.uptime_secs) < num(p.uptime_secs) ||
        num(s.messages_in) < num(p.messages_in) ||
        num(s.messages_out) < num(p.messages_out);
      if (reset) {
        rates.push({ t, gap: true });
        byteRates.push({ t, gap: true });
        prev = { t, s };
      } else if (dt >= 0.25) {
        if (t - prev.t > GAP_MS) {
          rates.push({ t: prev.t + 1, gap: true });
          byteRates.push({ t: prev.t + 1, gap: true });
        }
        const r = (k) => Math.max(0, (num(s[k]) - num(p[k])) / dt);
        rates.push({ t, v: [r("messages_in"), r("messages_out")] });
        byteRates.push({ t, v: [r("bytes_in"), r("bytes_out")] });
        prev = { t, s };
      }
      // else: too close to the previous sample for a meaningful rate; keep
      // the older one as the base.
    } else {
      prev = { t, s };
    }
    for (const list of [rates, byteRates]) {
      while (list.length && list[0].t < t - WINDOW_MS - 5000) list.shift();
    }
    render(s, t);
  }

  function render(s, t) {
    const lastRate = [...rates].reverse().find((p) => !p.gap);
    const lastBytes = [...byteRates].reverse().find((p) => !p.gap);
    $("rate-in").textContent = lastRate ? fmtCount(lastRate.v[0]) : "–";
    $("rate-out").textContent = lastRate ? fmtCount(lastRate.v[1]) : "–";
    $("total-in").textContent = fmtInt(num(s.messages_in));
    $("total-out").textContent = fmtInt(num(s.messages_out));
    $("bytes-rate").textContent = lastBytes ? `${fmtBytes(lastBytes.v[0] + lastBytes.v[1])}/s` : "–";
    $("bytes-total").textContent = `${fmtBytes(num(s.bytes_in))} in · ${fmtBytes(num(s.bytes_out))} out`;
    $("subscriptions").textContent = fmtInt(num(s.subscriptions));
    const slow = num(s.slow_consumers);
    $("slow-consumers").textContent = fmtInt(slow);
    $("slow-card").classList.toggle("alert", slow > 0);
    if (Number.isFinite(Number(s.dropped))) {
      const dropped = num(s.dropped);
      $("slow-foot").textContent = `${fmtInt(dropped)} ${dropped === 1 ? "message" : "messages"} dropped`;
    }
    $("uptime").textContent = fmtDuration(num(s.uptime_secs));

    const conns = s.connections && typeof s.connections === "object" ? s.connections : {};
    for (const proto of Object.keys(conns)) {
      if (!connRows.has(proto)) connRow(proto, proto);
    }
    let total = 0;
    let most = 0;
    for (const [proto] of connRows) {
      const n = num(conns[proto]);
      total += n;
      most = Math.max(most, n);
    }
    for (const [proto, row] of connRows) {
      const n = num(conns[proto]);
      row.count.textContent = fmtInt(n);
      row.li.dataset.count = String(n);
      row.fill.style.width = most ? `${Math.max(n ? 2 : 0, (n / most) * 100)}%` : "0";
    }
    $("connections-total").textContent = fmtInt(total);
    $("connections-sum").textContent = fmtInt(total);

    renderStreams(Array.isArray(s.streams) ? s.streams : []);

    rateChart.setData(rates, t);
    bytesChart.setData(byteRates, t);
  }

  let streamsKey = "";
  function renderStreams(streams) {
    const key = JSON.stringify(streams);
    if (key === streamsKey) return;
    streamsKey = key;
    const body = $("streams").tBodies[0];
    const rows = [];
    const sorted = [...streams].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const st of sorted) {
      const tr = document.createElement("tr");
      tr.dataset.stream = String(st.name);
      const cells = [
        [String(st.name), "c-name"],
        [fmtInt(num(st.messages)), "c-messages"],
        [fmtBytes(num(st.bytes)), "c-bytes"],
        [fmtInt(num(st.consumers)), "c-consumers"],
        [fmtInt(num(st.last_seq)), "c-last-seq"],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.className = cls;
        td.textContent = text;
        tr.append(td);
      }
      rows.push(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.className = "empty";
      td.colSpan = 5;
      td.textContent = "No streams yet. Create one with `herald stream add` or a JetStream client.";
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    $("streams-sub").textContent = streams.length === 1 ? "1 stream" : `${streams.length} streams`;
  }

  // Links between the pages keep an access token given in the URL.
  {
    const token = new URLSearchParams(window.location.search).get("access_token");
    if (token) {
      for (const a of document.querySelectorAll('a[href="/"], a[href="/chat"]')) {
        a.href = `${a.getAttribute("href")}?access_token=${encodeURIComponent(token)}`;
      }
    }
  }

  // ---------- live feed ----------

  const status = $("status");
  function setStatus(kind, label) {
    if (status.dataset.state === kind && status.querySelector(".label").textContent === label) return;
    status.dataset.state = kind;
    status.querySelector(".label").textContent = label;
  }

  function onStats(data) {
    let s;
    try {
      s = JSON.parse(data);
    } catch {
      return;
    }
    lastEventAt = Date.now();
    setStatus("live", "Live");
    ingest(s, lastEventAt);
  }

  // A page opened as /?access_token=… passes the token on (EventSource
  // cannot send an Authorization header).
  function withToken(path) {
    const token = new URLSearchParams(window.location.search).get("access_token");
    return token ? `${path}?access_token=${encodeURIComponent(token)}` : path;
  }

  let source = null;
  let attempt = 0;
  let retryTimer = 0;
  function openFeed() {
    clearTimeout(retryTimer);
    source = new EventSource(withToken("/v1/stats/live"));
    source.addEventListener("open", () => {
      attempt = 0;
    });
    source.addEventListener("stats", (e) => onStats(e.data));
    // Servers that send unnamed events: accept those too.
    source.addEventListener("message", (e) => onStats(e.data));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, say): retry with backoff.
        source.close();
        const delay = Math.min(15000, 1000 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
        attempt += 1;
        setStatus("offline", `Offline · retrying in ${Math.ceil(delay / 1000)}s`);
        retryTimer = setTimeout(openFeed, delay);
      } else {
        setStatus("reconnecting", "Reconnecting…");
      }
    });
  }

  setInterval(() => {
    if (lastEventAt && source && source.readyState === EventSource.OPEN && Date.now() - lastEventAt > STALE_MS) {
      setStatus("stale", `No data for ${Math.round((Date.now() - lastEventAt) / 1000)}s`);
    }
  }, 1000);

  // One sample right away so the figures show before the first event.
  fetch(withToken("/v1/stats"), { headers: { accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((s) => {
      if (s && !samples) ingest(s, Date.now());
    })
    .catch(() => {});
  openFeed();
  rateChart.setData(rates, Date.now());
  bytesChart.setData(byteRates, Date.now());
})();
