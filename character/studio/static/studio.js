// character studio: the page behaviour (no framework; plots by the plotly.js bundled in the plotly package).
"use strict";
const Studio = (() => {
  function token() {
    const m = document.cookie.match(/(?:^|;\s*)studio_token=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  async function post(url, body) {
    const headers = { "Content-Type": "application/json" };
    const t = token();
    if (t) headers["X-Studio-Token"] = t;
    let res;
    try {
      res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
    } catch (e) {
      return { ok: false, data: { error: "the Studio did not answer (" + e + ")" } };
    }
    let data = {};
    try { data = await res.json(); } catch (e) { data = { error: res.status + " " + res.statusText }; }
    return { ok: res.ok && !data.error, status: res.status, data };
  }

  function show(id, ok, message) {
    const el = document.getElementById(id);
    if (!el) return;
    el.textContent = message;
    el.className = "panel " + (ok ? "ok" : "error");
  }

  // Replace the element's content from `url` every `ms` while the server says something is live
  // (X-Studio-Live: 1); with `always`, keep polling so a run started later shows up too.
  function liveRefresh(id, url, ms, always) {
    const el = document.getElementById(id);
    if (!el) return;
    const holder = el.closest("[data-live]") || el;
    if (holder.dataset.live !== "1" && !always) return;
    const tick = async () => {
      try {
        const res = await fetch(url, { headers: { "Accept": "text/html" } });
        if (res.ok) {
          el.innerHTML = await res.text();
          holder.dataset.live = res.headers.get("X-Studio-Live") === "1" ? "1" : "0";
          if (holder.dataset.live !== "1" && !always) return;
        }
      } catch (e) { /* the server may be restarting: try again */ }
      setTimeout(tick, holder.dataset.live === "1" ? ms : 3 * ms);
    };
    setTimeout(tick, ms);
  }

  function drawPlots(specs) {
    if (!window.Plotly) return;
    for (const s of specs) {
      const traces = s.traces.map(t => ({
        x: t.x, y: t.y, name: t.name, type: "scatter", mode: t.x.length > 40 ? "lines" : "lines+markers",
        line: { dash: t.dash ? "dash" : "solid" },
      }));
      const layout = {
        title: { text: s.title, font: { size: 14 }, x: 0.01, xanchor: "left" }, height: 260,
        margin: { l: 50, r: 10, t: 40, b: 36 },
        xaxis: { title: { text: "" } }, legend: { orientation: "h", y: -0.18 }, hovermode: "x unified",
      };
      Plotly.newPlot(s.id, traces, layout, { responsive: true, displaylogo: false });
    }
  }

  function tableFilter(inputId, rowSel) {
    const input = document.getElementById(inputId);
    if (!input) return;
    input.addEventListener("input", () => {
      const q = input.value.toLowerCase();
      for (const tr of document.querySelectorAll(rowSel)) {
        tr.style.display = tr.textContent.toLowerCase().includes(q) ? "" : "none";
      }
    });
  }

  function registryActions() {
    for (const b of document.querySelectorAll("button.promote")) {
      b.addEventListener("click", async () => {
        const reason = document.getElementById("promote-reason").value;
        const force = document.getElementById("promote-force").checked;
        const r = await post("/api/checkpoints/promote", { name: b.dataset.name, reason, force });
        show("action-result", r.ok, r.ok ? r.data.message : r.data.error);
        if (r.ok) setTimeout(() => location.reload(), 800);
      });
    }
    for (const b of document.querySelectorAll("button.rollback")) {
      b.addEventListener("click", async () => {
        const reason = document.getElementById("promote-reason").value;
        const r = await post("/api/checkpoints/rollback", { persona: b.dataset.persona, reason });
        show("action-result", r.ok, r.ok ? r.data.message : r.data.error);
        if (r.ok) setTimeout(() => location.reload(), 800);
      });
    }
  }

  // Server-sent events over a POST: read the body stream and split it into events.
  async function* sse(res) {
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) !== -1) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        yield { event, data: data ? JSON.parse(data) : {} };
      }
    }
  }

  function chat() {
    const log = document.getElementById("chat-log");
    const input = document.getElementById("chat-input");
    const status = document.getElementById("chat-status");
    const sendBtn = document.getElementById("chat-send");
    let history = [];
    const bubble = (role, text) => {
      const d = document.createElement("div");
      d.className = "msg " + role;
      const l = document.createElement("span");
      l.className = "label";
      l.textContent = role;
      const p = document.createElement("pre");
      p.textContent = text;
      d.append(l, p);
      log.append(d);
      return p;
    };
    const send = async (ev) => {
      if (ev) ev.preventDefault();
      const text = input.value.trim();
      if (!text || sendBtn.disabled) return;
      input.value = "";
      bubble("user", text);
      history.push({ role: "user", content: text });
      const out = bubble("assistant", "");
      out.parentElement.classList.add("streaming");
      sendBtn.disabled = true;
      status.textContent = "thinking…";
      const body = {
        checkpoint: document.getElementById("chat-checkpoint").value,
        system: document.getElementById("chat-system").value,
        max_new_tokens: Number(document.getElementById("chat-max").value),
        temperature: Number(document.getElementById("chat-temp").value),
        messages: history,
      };
      const t0 = performance.now();
      let pieces = 0, failed = null;
      try {
        const res = await fetch("/api/chat", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        if (!res.ok) {
          failed = (await res.json()).error || res.statusText;
        } else {
          for await (const e of sse(res)) {
            if (e.event === "error") { failed = e.data.error; break; }
            if (e.event === "done") break;
            out.textContent += e.data.text;
            pieces += 1;
            status.textContent = "streaming… " + pieces + " pieces";
          }
        }
      } catch (e) { failed = String(e); }
      out.parentElement.classList.remove("streaming");
      sendBtn.disabled = false;
      if (failed) {
        history.pop();
        out.parentElement.classList.add("failed");
        out.textContent = "error: " + failed;
        status.textContent = "";
      } else {
        history.push({ role: "assistant", content: out.textContent });
        out.parentElement.dataset.pieces = String(pieces);
        out.parentElement.classList.add("done");
        status.textContent = "done in " + ((performance.now() - t0) / 1000).toFixed(1) + " s";
      }
    };
    sendBtn.addEventListener("click", send);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) send(e); });
    document.getElementById("chat-reset").addEventListener("click", () => { history = []; log.innerHTML = ""; });
  }

  function renderFindings(findings) {
    const ul = document.getElementById("lint-results");
    ul.innerHTML = "";
    if (!findings.length) {
      const li = document.createElement("li"); li.className = "ok"; li.textContent = "clean"; ul.append(li);
    }
    for (const f of findings) {
      const li = document.createElement("li");
      li.className = f.severity;
      const b = document.createElement("b"); b.textContent = f.rule + " ";
      li.append(b, (f.line ? "line " + f.line + ": " : "") + f.message);
      ul.append(li);
    }
    const errors = findings.filter(f => f.severity === "error").length;
    document.getElementById("lint-count").textContent =
      "(" + errors + " error(s), " + (findings.length - errors) + " warning(s))";
  }

  function editor() {
    const ta = document.getElementById("editor");
    let timer = null;
    ta.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const r = await post("/api/lint", { text: ta.value });
        if (r.data.findings) renderFindings(r.data.findings);
      }, 300);
    });
    document.getElementById("save").addEventListener("click", async () => {
      const r = await post("/api/constitutions/" + encodeURIComponent(ta.dataset.name), { text: ta.value });
      show("action-result", r.ok, r.ok ? r.data.message : r.data.error);
      if (r.data.findings) renderFindings(r.data.findings);
    });
  }

  function newConstitution() {
    document.getElementById("new-create").addEventListener("click", async () => {
      const r = await post("/api/constitutions", { name: document.getElementById("new-name").value.trim() });
      show("action-result", r.ok, r.ok ? r.data.message : r.data.error);
      if (r.ok) location.href = r.data.url;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("token-state");
    if (el) el.textContent = token() ? "token set: writes allowed" : "read-only: open the printed ?token= URL to write";
  });

  return { token, post, liveRefresh, drawPlots, tableFilter, registryActions, chat, editor, newConstitution };
})();
