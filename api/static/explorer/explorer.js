// kgforge graph explorer (api/routers/explorer.py documents the page). Plain JavaScript over the
// vendored vis-network; every value from the graph is written with textContent, never as HTML.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const LABEL_COLOURS = {
    Entity: "#6fa8dc", Item: "#93c47d", Brand: "#f6b26b", Category: "#c27ba0", User: "#b7b7b7", Relation: "#999999",
  };
  const KEY_STORAGE = "kgforge-api-key";
  const NAME_BATCH = 100;

  const nodes = new vis.DataSet();
  const edges = new vis.DataSet();
  const nodeInfo = new Map(); // id -> {id, label, name, properties, domain}
  const edgeInfo = new Map(); // head|TYPE|tail -> {head, tail, type, relation, confidence, sources, evidence, job_id, properties}
  const state = { expanded: new Set(), selected: null, stable: true, busy: 0, lastError: null, view: null };
  const filters = { minConf: 0, domain: "", job: "", hiddenTypes: new Set() };

  // --- the API --------------------------------------------------------------------------------------
  function describe(body, response) {
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("\n");
    }
    if (body && body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    return `${response.status} ${response.statusText}`;
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.Authorization = "Bearer " + key;
    opts.headers = headers;
    state.busy += 1;
    try {
      const response = await fetch(path, opts);
      let body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      if (response.status === 401 || response.status === 403) $("key-box").hidden = false;
      if (!response.ok) {
        const error = new Error(describe(body, response));
        error.status = response.status;
        throw error;
      }
      return body;
    } finally {
      state.busy -= 1;
    }
  }

  function setStatus(text, isError) {
    const box = $("status");
    box.textContent = text || "";
    box.className = isError ? "error" : "small";
    if (isError) state.lastError = text;
  }

  // --- drawing --------------------------------------------------------------------------------------
  const short = (text, n) => (text.length > n ? text.slice(0, n - 1) + "\u2026" : text);
  const edgeKey = (head, type, tail) => `${head}|${type}|${tail}`;

  function edgeStyle(confidence) {
    if (confidence === null || confidence === undefined) {
      return { width: 1.2, color: { color: "#9aa5b1", highlight: "#52606d", hover: "#52606d", opacity: 0.75 } };
    }
    const c = Math.max(0, Math.min(1, Number(confidence)));
    const hue = Math.round(120 * c); // red (0) .. green (1)
    const colour = `hsl(${hue}, 65%, 40%)`;
    return { width: 1 + 3 * c, color: { color: colour, highlight: colour, hover: colour, opacity: 0.3 + 0.7 * c } };
  }

  function upsertNode(node) {
    const known = nodeInfo.get(node.id) || {};
    const properties = node.properties && Object.keys(node.properties).length ? node.properties : known.properties || {};
    const info = {
      id: node.id,
      label: node.label || known.label || null,
      name: node.name || properties.name || known.name || null,
      properties: properties,
    };
    info.domain = typeof properties.domain === "string" ? properties.domain : null;
    nodeInfo.set(node.id, info);
    nodes.update({
      id: node.id,
      label: short(String(info.name || info.id), 30),
      title: `${info.label || "node"} ${info.id}${info.domain ? " (" + info.domain + ")" : ""}`,
      color: { background: LABEL_COLOURS[info.label] || "#d0d0d0", border: "#3d4b5c" },
      borderWidth: state.expanded.has(node.id) ? 3 : 1,
    });
  }

  function upsertEdge(edge) {
    const key = edgeKey(edge.head, edge.type, edge.tail);
    const info = {
      head: edge.head, tail: edge.tail, type: edge.type, relation: edge.relation || edge.type,
      confidence: typeof edge.confidence === "number" ? edge.confidence : null,
      sources: edge.sources || [], evidence: edge.evidence || [], job_id: edge.job_id || null,
      properties: edge.properties || {},
    };
    edgeInfo.set(key, info);
    edges.update(Object.assign({
      id: key, from: edge.head, to: edge.tail, label: info.relation, arrows: "to",
      title: `${info.relation}${info.confidence === null ? "" : " (confidence " + info.confidence.toFixed(2) + ")"}`,
    }, edgeStyle(info.confidence)));
  }

  function clearGraph() {
    nodes.clear();
    edges.clear();
    nodeInfo.clear();
    edgeInfo.clear();
    state.expanded.clear();
    state.selected = null;
    refreshFilterChoices();
  }

  // --- filters --------------------------------------------------------------------------------------
  function nodeVisible(id) {
    const info = nodeInfo.get(id);
    if (!info) return false;
    if (filters.domain && info.domain && info.domain !== filters.domain) return false;
    if (filters.job) {
      for (const e of edgeInfo.values()) {
        if ((e.head === id || e.tail === id) && edgeMatchesJob(e)) return true;
      }
      return false;
    }
    return true;
  }

  function edgeMatchesJob(e) {
    if (!filters.job) return true;
    return filters.job === "(none)" ? !e.job_id : e.job_id === filters.job;
  }

  function edgeVisible(key) {
    const e = edgeInfo.get(key);
    if (!e) return false;
    if (e.confidence !== null && e.confidence < filters.minConf) return false;
    if (filters.hiddenTypes.has(e.type)) return false;
    if (!edgeMatchesJob(e)) return false;
    return nodeVisible(e.head) && nodeVisible(e.tail);
  }

  const nodeView = new vis.DataView(nodes, { filter: (n) => nodeVisible(n.id) });
  const edgeView = new vis.DataView(edges, { filter: (e) => edgeVisible(e.id) });

  function applyFilters() {
    nodeView.refresh();
    edgeView.refresh();
  }

  function fillSelect(select, values, extra) {
    const current = select.value;
    while (select.options.length > 1) select.remove(1);
    for (const value of [...extra, ...[...values].sort()]) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    }
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
  }

  function refreshFilterChoices() {
    const domains = new Set();
    for (const n of nodeInfo.values()) if (n.domain) domains.add(n.domain);
    const jobs = new Set();
    let noJob = false;
    const types = new Set();
    for (const e of edgeInfo.values()) {
      if (e.job_id) jobs.add(e.job_id); else noJob = true;
      types.add(e.type);
    }
    if (filters.job && filters.job !== "(none)") jobs.add(filters.job);
    fillSelect($("filter-domain"), domains, []);
    fillSelect($("filter-job"), jobs, noJob ? ["(none)"] : []);
    $("filter-job").value = filters.job;
    filters.domain = $("filter-domain").value;
    const box = $("filter-types");
    box.textContent = "";
    for (const type of [...types].sort()) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.checked = !filters.hiddenTypes.has(type);
      input.dataset.type = type;
      input.addEventListener("change", () => {
        if (input.checked) filters.hiddenTypes.delete(type); else filters.hiddenTypes.add(type);
        applyFilters();
      });
      label.append(input, " " + type);
      box.appendChild(label);
    }
    applyFilters();
  }

  // --- the network ----------------------------------------------------------------------------------
  const network = new vis.Network($("graph"), { nodes: nodeView, edges: edgeView }, {
    nodes: { shape: "dot", size: 14, font: { size: 13, color: "#1d2733", strokeWidth: 3, strokeColor: "#ffffff" } },
    edges: { font: { size: 10, align: "middle", color: "#52606d", strokeWidth: 3 }, smooth: false,
             selectionWidth: 2 },
    physics: { solver: "barnesHut", barnesHut: { gravitationalConstant: -6000, springLength: 150 },
               stabilization: { enabled: true, iterations: 200, updateInterval: 50, fit: true } },
    interaction: { hover: true, tooltipDelay: 150, navigationButtons: false, keyboard: false },
  });
  network.on("startStabilizing", () => { state.stable = false; });
  network.on("stabilizationIterationsDone", () => {
    state.stable = true;
    network.setOptions({ physics: { enabled: false } });
  });

  function relayout() {
    state.stable = false;
    network.setOptions({ physics: { enabled: true } });
    network.stabilize(200);
  }

  network.on("click", (params) => {
    if (params.nodes.length) {
      const id = params.nodes[0];
      showNode(id);
      if (!state.expanded.has(id)) expand(id).catch((e) => setStatus(e.message, true));
    } else if (params.edges.length) {
      showEdge(params.edges[0]);
    }
  });

  // --- loading --------------------------------------------------------------------------------------
  function neighbourLimit() {
    const value = parseInt($("neighbour-limit").value, 10);
    return Number.isFinite(value) ? Math.max(1, Math.min(500, value)) : 50;
  }

  async function fillNames(missing) {
    for (let i = 0; i < missing.length; i += NAME_BATCH) {
      const batch = missing.slice(i, i + NAME_BATCH);
      const params = new URLSearchParams();
      batch.forEach(([id]) => params.append("id", id));
      new Set(batch.map((x) => x[1]).filter(Boolean)).forEach((label) => params.append("label", label));
      const body = await api(`/v1/explorer/nodes?${params}`);
      body.items.forEach(upsertNode);
    }
  }

  async function expand(id) {
    const body = await api(`/v1/entities/${encodeURIComponent(id)}?limit=${neighbourLimit()}`);
    state.expanded.add(id);
    upsertNode(body.node);
    const missing = [];
    for (const n of body.neighbours) {
      for (const [nid, label] of [[n.head, n.head_label], [n.tail, n.tail_label]]) {
        if (!nodeInfo.has(nid)) {
          upsertNode({ id: nid, label: label, name: null, properties: {} });
          missing.push([nid, label]);
        }
      }
      upsertEdge(n);
    }
    await fillNames(missing);
    refreshFilterChoices();
    relayout();
    setStatus(`${body.node.name || id}: ${body.neighbours.length} neighbour edge(s)${body.has_more ? " (more exist: raise 'neighbours per click')" : ""}`);
    return body;
  }

  async function openNode(id) {
    clearGraph();
    state.view = { node: id };
    await expand(id);
    state.selected = { node: id };
    network.selectNodes([id]);
    showNode(id);
  }

  async function openJob(jobId) {
    clearGraph();
    state.view = { job: jobId };
    filters.job = jobId;
    const body = await api(`/v1/explorer/jobs/${encodeURIComponent(jobId)}/edges?limit=500`);
    body.nodes.forEach(upsertNode);
    body.edges.forEach(upsertEdge);
    refreshFilterChoices();
    relayout();
    setStatus(`${body.edges.length} triple(s) written by job ${jobId}${body.truncated ? " (the first 500)" : ""}`);
    showJob(jobId);
  }

  async function search(name, label, domain) {
    state.view = { q: name };
    const params = new URLSearchParams({ name: name, neighbours: "0", limit: "50" });
    if (label) params.set("label", label);
    if (domain) params.set("domain", domain);
    const body = await api(`/v1/entities?${params}`);
    const list = $("results");
    list.textContent = "";
    for (const item of body.items) {
      const node = item.node;
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/explorer?node=${encodeURIComponent(node.id)}`;
      a.dataset.id = node.id;
      a.textContent = node.name || node.id;
      a.addEventListener("click", (event) => {
        event.preventDefault();
        history.pushState(null, "", a.href);
        openNode(node.id).catch((e) => setStatus(e.message, true));
      });
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = [node.label, node.id, node.properties.domain].filter(Boolean).join(" \u00b7 ");
      li.append(a, meta);
      list.appendChild(li);
    }
    setStatus(body.items.length ? `${body.items.length} node(s) named "${name}"` : `no node named "${name}"`);
    if (body.items.length === 1) await openNode(body.items[0].node.id);
    return body;
  }

  // --- the side panel -------------------------------------------------------------------------------
  function valueText(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function definitionList(entries) {
    const dl = document.createElement("dl");
    for (const [key, value] of entries) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      if (value instanceof Node) dd.appendChild(value); else dd.textContent = valueText(value);
      dl.append(dt, dd);
    }
    return dl;
  }

  function link(text, href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function heading(text) {
    const h = document.createElement("h2");
    h.textContent = text;
    return h;
  }

  function panel(title) {
    $("panel-title").textContent = title;
    const body = $("panel-body");
    body.textContent = "";
    return body;
  }

  function showNode(id) {
    state.selected = { node: id };
    const info = nodeInfo.get(id) || { id: id, properties: {} };
    const body = panel(info.name || id);
    body.appendChild(definitionList([["label", info.label], ["id", info.id],
      ["view", link("open this node", `/explorer?node=${encodeURIComponent(id)}`)]]));
    body.appendChild(heading("Properties"));
    body.appendChild(definitionList(Object.keys(info.properties).sort().map((k) => [k, info.properties[k]])));
  }

  function showEdge(key) {
    const e = edgeInfo.get(key);
    if (!e) return;
    state.selected = { edge: key };
    const head = nodeInfo.get(e.head) || {};
    const tail = nodeInfo.get(e.tail) || {};
    const body = panel(`${head.name || e.head} \u2192 ${e.relation} \u2192 ${tail.name || e.tail}`);
    const bar = document.createElement("div");
    if (e.confidence !== null) {
      bar.className = "conf-bar";
      bar.style.width = `${Math.round(100 * e.confidence)}%`;
    }
    const confidence = document.createElement("span");
    confidence.append(e.confidence === null ? "none (imported fact)" : e.confidence.toFixed(3), bar);
    body.appendChild(definitionList([
      ["head", link(e.head, `/explorer?node=${encodeURIComponent(e.head)}`)],
      ["type", e.type], ["relation", e.relation],
      ["tail", link(e.tail, `/explorer?node=${encodeURIComponent(e.tail)}`)],
      ["confidence", confidence],
    ]));

    body.appendChild(heading("Sources"));
    const sources = document.createElement("div");
    e.sources.forEach((s) => { const pill = document.createElement("span"); pill.className = "pill"; pill.textContent = s; sources.appendChild(pill); });
    if (!e.sources.length) sources.textContent = "none";
    body.appendChild(sources);

    body.appendChild(heading("Evidence documents"));
    const docs = document.createElement("div");
    if (!e.evidence.length) docs.textContent = "none";
    for (const docId of e.evidence) {
      const row = document.createElement("div");
      row.className = "doc";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "evidence";
      button.textContent = docId;
      const text = document.createElement("div");
      text.className = "doc-text";
      text.hidden = true;
      button.addEventListener("click", async () => {
        if (!text.hidden) { text.hidden = true; return; }
        text.hidden = false;
        text.textContent = "loading\u2026";
        const domain = head.domain || tail.domain;
        const query = domain && !docId.startsWith(domain + ":") ? `?domain=${encodeURIComponent(domain)}` : "";
        try {
          const doc = await api(`/v1/explorer/documents/${encodeURIComponent(docId)}${query}`);
          text.textContent = (doc.title ? doc.title + "\n\n" : "") + doc.text;
        } catch (err) {
          text.textContent = err.message;
        }
      });
      row.append(button, text);
      docs.appendChild(row);
    }
    body.appendChild(docs);

    body.appendChild(heading("Job"));
    if (e.job_id) {
      const jobBox = document.createElement("div");
      jobBox.appendChild(definitionList([["id", link(e.job_id, `/explorer?job=${encodeURIComponent(e.job_id)}`)]]));
      body.appendChild(jobBox);
      loadJob(e.job_id, jobBox);
    } else {
      const none = document.createElement("div");
      none.textContent = "none: imported with a dataset";
      body.appendChild(none);
    }
    body.appendChild(heading("Other properties"));
    body.appendChild(definitionList(Object.keys(e.properties).sort().map((k) => [k, e.properties[k]])));
  }

  async function loadJob(jobId, box) {
    try {
      const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}?entities=false`);
      box.appendChild(definitionList([
        ["status", job.status], ["kind", job.kind], ["domain", job.domain], ["created", job.created_at],
        ["finished", job.finished_at], ["counts", job.counts],
        ["status (JSON)", link(`/v1/jobs/${jobId}`, `/v1/jobs/${encodeURIComponent(jobId)}`)],
      ]));
    } catch (err) {
      const note = document.createElement("p");
      note.className = "small";
      note.textContent = `job status unavailable: ${err.message}`;
      box.appendChild(note);
    }
  }

  function showJob(jobId) {
    const body = panel(`Job ${jobId}`);
    const box = document.createElement("div");
    body.appendChild(box);
    loadJob(jobId, box);
  }

  // --- Cypher ---------------------------------------------------------------------------------------
  function cellText(value) {
    if (value && typeof value === "object" && value.kind === "node") {
      return `(${value.labels.map((l) => ":" + l).join("")} ${value.properties.name || value.id})`;
    }
    if (value && typeof value === "object" && value.kind === "relationship") return `[:${value.type}]`;
    if (value && typeof value === "object" && value.kind === "path") return `path of ${value.relationships.length}`;
    return valueText(value);
  }

  function renderTable(result) {
    const table = $("cypher-table");
    table.textContent = "";
    const head = document.createElement("tr");
    result.columns.forEach((c) => { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); });
    table.appendChild(head);
    for (const row of result.rows) {
      const tr = document.createElement("tr");
      row.forEach((v) => { const td = document.createElement("td"); td.textContent = short(cellText(v), 300); tr.appendChild(td); });
      table.appendChild(tr);
    }
    $("table-wrap").hidden = false;
  }

  async function runCypher() {
    const error = $("cypher-error");
    error.hidden = true;
    error.textContent = "";
    $("cypher-info").textContent = "running\u2026";
    try {
      const result = await api("/v1/cypher", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ query: $("cypher").value }),
      });
      renderTable(result);
      $("cypher-info").textContent = `${result.rows.length} row(s)${result.truncated ? ` (cut at ${result.row_limit})` : ""} in ${result.elapsed_ms} ms`;
      if ($("cypher-draw").checked && (result.nodes.length || result.relationships.length)) {
        clearGraph();
        state.view = { cypher: true };
        result.nodes.forEach((n) => upsertNode({ id: n.id, label: n.labels[0], name: n.properties.name, properties: n.properties }));
        result.relationships.forEach((r) => {
          const props = Object.assign({}, r.properties);
          const edge = { head: r.start, tail: r.end, type: r.type, relation: props.relation, confidence: props.confidence,
                         sources: props.sources, evidence: props.evidence, job_id: props.job_id };
          ["relation", "confidence", "sources", "evidence", "job_id"].forEach((k) => delete props[k]);
          edge.properties = props;
          upsertEdge(edge);
        });
        refreshFilterChoices();
        relayout();
      }
    } catch (err) {
      $("cypher-info").textContent = "";
      error.textContent = err.message;
      error.hidden = false;
      state.lastError = err.message;
    }
  }

  // --- wiring ---------------------------------------------------------------------------------------
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("search").value.trim();
    if (!name) return;
    const params = new URLSearchParams({ q: name });
    if ($("search-label").value) params.set("label", $("search-label").value);
    if ($("search-domain").value.trim()) params.set("domain", $("search-domain").value.trim());
    history.pushState(null, "", `/explorer?${params}`);
    search(name, $("search-label").value, $("search-domain").value.trim()).catch((e) => setStatus(e.message, true));
  });
  $("clear").addEventListener("click", () => { clearGraph(); $("panel-title").textContent = "Nothing selected"; $("panel-body").textContent = ""; });
  $("min-conf").addEventListener("input", () => {
    filters.minConf = parseFloat($("min-conf").value);
    $("min-conf-value").textContent = filters.minConf.toFixed(2);
    applyFilters();
  });
  $("filter-domain").addEventListener("change", () => { filters.domain = $("filter-domain").value; applyFilters(); });
  $("filter-job").addEventListener("change", () => { filters.job = $("filter-job").value; applyFilters(); });
  $("cypher-run").addEventListener("click", runCypher);
  $("cypher").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) runCypher();
  });
  $("api-key-save").addEventListener("click", () => {
    sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    $("api-key").value = "";
    route();
  });

  async function route() {
    const params = new URLSearchParams(location.search);
    try {
      if (params.get("cypher")) {
        $("cypher").value = params.get("cypher");
        await runCypher();
      }
      if (params.get("job")) {
        await openJob(params.get("job"));
      } else if (params.get("node")) {
        await openNode(params.get("node"));
      } else if (params.get("q")) {
        $("search").value = params.get("q");
        $("search-label").value = params.get("label") || "";
        $("search-domain").value = params.get("domain") || "";
        await search(params.get("q"), params.get("label"), params.get("domain"));
      }
    } catch (e) {
      setStatus(e.message, true);
    }
  }
  window.addEventListener("popstate", route);

  // State for tests and scripts (no pixel hunting): what is drawn, shown, selected, and where.
  window.explorer = {
    network: network,
    nodeIds: () => nodes.getIds(),
    edgeIds: () => edges.getIds(),
    shownNodeIds: () => nodeView.getIds(),
    shownEdgeIds: () => edgeView.getIds(),
    expanded: () => [...state.expanded],
    selected: () => state.selected,
    idle: () => state.busy === 0 && state.stable,
    lastError: () => state.lastError,
    node: (id) => nodeInfo.get(id) || null,
    showNode: showNode,
    showEdge: showEdge,
    edge: (key) => edgeInfo.get(key) || null,
    domPosition: (id) => network.canvasToDOM(network.getPositions([id])[id]),
    filters: filters,
    applyFilters: applyFilters,
    ready: false,
  };
  route().finally(() => { window.explorer.ready = true; });
})();
