// ecash-tpm dashboard: draws the events of /events (server-sent events). Everything shown
// comes from the stream as data and is written with textContent, never as HTML.
"use strict";

(function () {
  const STATUS_MARK = { ok: "✓", bad: "✗", warn: "!", muted: "·", "": "·" };
  const STEP_MARK = { pending: "", running: "…", ok: "✓", failed: "✗" };
  const stepNodes = new Map();
  let stepOrder = 0;
  let stepsTotal = 0;
  let stepsDone = 0;
  let ended = false;
  let source = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  // --- connection ---------------------------------------------------------------------------

  function setConn(state, text) {
    const conn = byId("conn");
    conn.dataset.state = state;
    byId("conn-text").textContent = text;
  }

  function connect() {
    source = new EventSource("/events");
    source.onopen = function () {
      setConn("live", "live");
    };
    source.onmessage = function (message) {
      handle(JSON.parse(message.data));
    };
    source.onerror = function () {
      if (ended) {
        source.close();
      } else {
        setConn("retrying", "reconnecting");
      }
    };
  }

  // --- events -------------------------------------------------------------------------------

  function handle(ev) {
    switch (ev.kind) {
      case "story":
        startStory(ev);
        break;
      case "step":
        updateStep(ev);
        break;
      case "fact":
        addLine(ev.step, "fact", ev.label, ev.value);
        break;
      case "say":
        addLine(ev.step, "say", null, ev.text);
        break;
      case "card":
        renderCard(ev.card);
        break;
      case "notice":
        byId("notices").appendChild(el("p", "notice", ev.text));
        break;
      case "end":
        finish(ev);
        break;
      default:
        break;
    }
  }

  function startStory(ev) {
    document.title = ev.title + " · live attestation dashboard";
    byId("title").textContent = ev.title;
    const mode = byId("mode");
    mode.textContent = ev.mode === "demo" ? "demo · live" : "deployment · read-only";
    mode.className = "pill mode-" + ev.mode;
    const list = byId("steps");
    if (ev.mode !== "demo") {
      byId("timeline-title").textContent = "Parties";
      list.hidden = true;
      const parties = byId("party-list");
      parties.hidden = false;
      parties.replaceChildren();
      (ev.parties || []).forEach(function (p) {
        const li = el("li");
        li.appendChild(el("strong", null, p.name));
        li.appendChild(el("span", "role", p.role));
        li.appendChild(el("span", "mono url", p.url));
        parties.appendChild(li);
      });
      return;
    }
    if (stepNodes.size) return; // a replay after a reconnect: the steps are there already
    stepsTotal = ev.steps.length;
    ev.steps.forEach(function (step, index) {
      const li = el("li", "step");
      li.dataset.step = step.name;
      li.dataset.state = "pending";
      const head = el("div", "step-head");
      head.appendChild(el("span", "num", String(index + 1)));
      const text = el("div", "step-text");
      text.appendChild(el("span", "step-title", step.title));
      text.appendChild(el("code", "step-name", step.name));
      head.appendChild(text);
      head.appendChild(el("span", "ms"));
      head.appendChild(el("span", "mark"));
      li.appendChild(head);
      const lines = el("ul", "lines");
      li.appendChild(lines);
      list.appendChild(li);
      stepNodes.set(step.name, li);
    });
    showProgress();
  }

  function showProgress() {
    const progress = byId("progress");
    progress.hidden = stepsTotal === 0;
    progress.textContent = stepsDone + " / " + stepsTotal + " steps";
  }

  function updateStep(ev) {
    const li = stepNodes.get(ev.step);
    if (!li) return;
    if (!li.dataset.order) {
      stepOrder += 1;
      li.dataset.order = String(stepOrder);
    }
    li.dataset.state = ev.status;
    li.querySelector(".mark").textContent = STEP_MARK[ev.status] || "";
    if (ev.status === "running") {
      stepNodes.forEach(function (node) {
        node.classList.remove("current");
      });
      li.classList.add("current");
    } else {
      li.classList.remove("current");
      stepsDone += 1;
      showProgress();
    }
    if (typeof ev.ms === "number") {
      li.querySelector(".ms").textContent = formatMs(ev.ms);
    }
    if (ev.error) {
      addLine(ev.step, "error", ev.error.code, ev.error.message);
    }
  }

  function formatMs(ms) {
    return ms >= 1000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms) + " ms";
  }

  function addLine(stepName, kind, label, text) {
    const li = stepNodes.get(stepName);
    if (!li) return;
    const line = el("li", "line " + kind);
    if (label) line.appendChild(el("span", "label", label));
    line.appendChild(el("span", "value", text));
    li.querySelector(".lines").appendChild(line);
  }

  function finish(ev) {
    ended = true;
    const verdict = byId("verdict");
    verdict.hidden = false;
    verdict.textContent = ev.message;
    verdict.className = "pill " + (ev.ok ? "good" : "bad");
    document.body.dataset.ended = ev.ok ? "ok" : "failed";
    byId("mode").textContent = "demo · finished";
    setConn("ended", "story over");
    if (source) source.close();
  }

  // --- cards --------------------------------------------------------------------------------

  function renderCard(card) {
    let node = byId("card-" + card.id);
    if (!node) {
      node = el("article");
      node.id = "card-" + card.id;
      byId("cards").appendChild(node);
    }
    node.className = "card card-" + card.id + " state-" + card.state;
    node.dataset.state = card.state;
    const head = el("header", "card-head");
    head.appendChild(el("h3", null, card.title));
    if (card.badge) head.appendChild(el("span", "badge", card.badge));
    const body = el("div", "card-body");
    card.blocks.forEach(function (block) {
      body.appendChild(renderBlock(block));
    });
    node.replaceChildren(head, body);
    node.classList.remove("flash");
    void node.offsetWidth; // restart the highlight animation
    node.classList.add("flash");
  }

  function renderCell(value) {
    if (value === null || value === undefined) return el("span", "cell muted", "—");
    if (typeof value !== "object") return el("span", "cell", value);
    const span = el("span", "cell");
    if (value.status) {
      span.classList.add("status-" + value.status);
      if (value.status === "ok" || value.status === "bad") {
        span.appendChild(el("span", "tick", STATUS_MARK[value.status]));
      }
    }
    if (value.mono) span.classList.add("mono");
    if (value.title) span.title = value.title;
    span.appendChild(document.createTextNode(String(value.text)));
    return span;
  }

  function titled(block, node) {
    if (!block.title && !block.caption) return node;
    const wrap = el("div", "block");
    if (block.title) wrap.appendChild(el("h4", null, block.title));
    wrap.appendChild(node);
    if (block.caption) wrap.appendChild(el("p", "caption", block.caption));
    return wrap;
  }

  function renderBlock(block) {
    switch (block.type) {
      case "kv": {
        const dl = el("dl", "kv");
        block.rows.forEach(function (row) {
          dl.appendChild(el("dt", null, row[0]));
          const dd = el("dd");
          dd.appendChild(renderCell(row[1]));
          dl.appendChild(dd);
        });
        return titled(block, dl);
      }
      case "table": {
        const wrap = el("div", "table-wrap");
        const table = el("table");
        const thead = el("thead");
        const tr = el("tr");
        block.columns.forEach(function (c) {
          tr.appendChild(el("th", null, c));
        });
        thead.appendChild(tr);
        const tbody = el("tbody");
        block.rows.forEach(function (row) {
          const r = el("tr");
          row.forEach(function (c) {
            const td = el("td");
            td.appendChild(renderCell(c));
            r.appendChild(td);
          });
          tbody.appendChild(r);
        });
        table.appendChild(thead);
        table.appendChild(tbody);
        wrap.appendChild(table);
        return titled(block, wrap);
      }
      case "checks": {
        const ul = el("ul", "checks");
        block.items.forEach(function (item) {
          const li = el("li", "status-" + (item.status || "none"));
          li.appendChild(el("span", "tick", STATUS_MARK[item.status || ""]));
          li.appendChild(el("span", null, item.text));
          ul.appendChild(li);
        });
        return titled(block, ul);
      }
      case "note":
        return el("p", "note status-" + (block.status || "none"), block.text);
      case "columns": {
        const cols = el("div", "cols status-" + (block.status || "none"));
        block.columns.forEach(function (col) {
          const div = el("div", "col");
          div.appendChild(el("h4", null, col.title));
          col.blocks.forEach(function (inner) {
            div.appendChild(renderBlock(inner));
          });
          cols.appendChild(div);
        });
        return cols;
      }
      default:
        return el("p", "note", "(unknown block " + block.type + ")");
    }
  }

  connect();
})();
