// procqa pages: the search page (/) and the procedure page (/procedures/{id}).
// Every text from the API reaches the page through textContent or text nodes, never as HTML.
"use strict";

const RESULTS = 10;

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function slug(name) {
  return "section-" + (name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "untitled");
}

function codeLabel(procedure) {
  if (!procedure.code) return null;
  return procedure.code_system ? `${procedure.code_system} ${procedure.code}` : procedure.code;
}

async function getJSON(url, signal) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, signal });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // a body that is not JSON leaves only the status to report
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message;
    throw new Error(message || `the server answered ${response.status}`);
  }
  return body;
}

// The passage with its answer in a <mark>. The API's offsets count code points, as Python
// strings do; JavaScript strings count UTF-16 units, so slice an array of code points.
function passageWithAnswer(result) {
  const chars = Array.from(result.text);
  let start = result.answer_start;
  let end = result.answer_end;
  const fits = Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= chars.length;
  if (!fits || chars.slice(start, end).join("") !== result.answer) {
    const at = result.answer ? result.text.indexOf(result.answer) : -1;
    if (at < 0) return el("p", { class: "passage" }, result.text);
    start = Array.from(result.text.slice(0, at)).length;
    end = start + Array.from(result.answer).length;
  }
  return el(
    "p",
    { class: "passage" },
    chars.slice(0, start).join(""),
    el("mark", {}, chars.slice(start, end).join("")),
    chars.slice(end).join(""),
  );
}

// The kind of a section is shown only where it says more than the heading ("Going home": Recovery).
function isOtherKind(heading, kind) {
  return Boolean(kind) && kind.toLowerCase() !== heading.toLowerCase();
}

function card(result) {
  const procedure = result.procedure;
  const titleId = `result-${result.rank}-title`;
  const href = `procedures/${encodeURIComponent(procedure.id)}#${slug(result.section)}`;
  const tags = el("p", { class: "tags" });
  const code = codeLabel(procedure);
  if (code) tags.append(el("span", { class: "badge", title: "Procedure code" }, code));
  tags.append(el("span", { class: "section-name" }, result.section));
  if (isOtherKind(result.section, result.section_kind)) {
    tags.append(el("span", { class: "section-kind", title: "What this heading is a variant of" }, result.section_kind));
  }
  const [first, last] = result.lines;
  const confidence = `${Math.round(result.confidence * 100)}% confident`;
  tags.append(el("span", { class: "confidence", title: "Chance this passage answers the question" }, confidence));
  const where = `${result.source}, lines ${first}–${last} · score ${result.score.toFixed(2)}`;
  return el(
    "li",
    { class: "card" },
    el(
      "article",
      { "aria-labelledby": titleId },
      el("h2", { class: "card-title", id: titleId }, el("a", { href }, procedure.title)),
      tags,
      passageWithAnswer(result),
      el("p", { class: "where" }, where),
    ),
  );
}

function addOptions(select, options) {
  for (const [value, label] of options) select.append(el("option", { value }, label));
}

function searchPage(form) {
  const query = form.querySelector("#q");
  const section = form.querySelector("#section");
  const code = form.querySelector("#code");
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const banner = document.getElementById("coverage");
  let inFlight = null;

  function showCoverage(body) {
    banner.hidden = body.covered;
    results.classList.toggle("uncovered", !body.covered);
    if (!body.covered) {
      const reason = body.reason.charAt(0).toUpperCase() + body.reason.slice(1);
      banner.textContent = `${reason}. Closest pages:`;
    }
  }

  async function loadFilters() {
    const [ready, procedures] = await Promise.all([getJSON("ready"), getJSON("procedures")]);
    addOptions(section, ready.sections.map((name) => [name, name]));
    const coded = procedures.data.filter((p) => p.code).sort((a, b) => a.title.localeCompare(b.title));
    addOptions(code, coded.map((p) => [p.code, `${p.title} (${codeLabel(p)})`]));
  }

  async function search() {
    const q = query.value;
    if (!q.trim()) {
      status.textContent = "Type a question first.";
      query.focus();
      return;
    }
    const params = new URLSearchParams({ q, k: String(RESULTS) });
    if (section.value) params.set("section", section.value);
    if (code.value) params.set("code", code.value);
    history.replaceState(null, "", `?${params}`);
    if (inFlight) inFlight.abort();
    inFlight = new AbortController();
    status.textContent = "Searching…";
    results.setAttribute("aria-busy", "true");
    try {
      const body = await getJSON(`search?${params}`, inFlight.signal);
      showCoverage(body);
      results.replaceChildren(...body.results.map(card));
      const count = body.results.length;
      status.textContent = count
        ? `${count} passage${count === 1 ? "" : "s"} for “${body.query}” (${body.took_ms} ms).`
        : `No passages for “${body.query}”; try other words or fewer filters.`;
    } catch (error) {
      if (error.name === "AbortError") return;
      showCoverage({ covered: true });
      results.replaceChildren();
      status.textContent = `Could not search: ${error.message}`;
    } finally {
      results.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });

  const wanted = new URLSearchParams(location.search);
  query.value = wanted.get("q") || "";
  loadFilters()
    .catch((error) => {
      status.textContent = `Filters unavailable: ${error.message}`;
    })
    .finally(() => {
      section.value = wanted.get("section") || "";
      code.value = wanted.get("code") || "";
      form.dataset.ready = "true";
      if (query.value.trim()) search();
    });
}

function procedurePage(article) {
  const status = document.getElementById("status");
  const title = document.getElementById("title");

  function render(procedure) {
    title.textContent = procedure.title;
    document.title = `${procedure.title} · procqa`;
    const meta = document.getElementById("meta");
    const code = codeLabel(procedure);
    if (code) meta.append(el("span", { class: "badge", title: "Procedure code" }, code));
    const toc = document.getElementById("toc-list");
    const sections = document.getElementById("sections");
    const used = new Set();
    for (const section of procedure.sections) {
      let id = slug(section.name);
      for (let n = 2; used.has(id); n++) id = `${slug(section.name)}-${n}`;
      used.add(id);
      const [first, last] = section.lines;
      toc.append(el("li", {}, el("a", { href: `#${id}` }, section.name)));
      sections.append(
        el(
          "section",
          { id, class: "section", tabindex: "-1", "aria-labelledby": `${id}-title` },
          el("h2", { id: `${id}-title` }, section.name),
          isOtherKind(section.name, section.kind) ? el("p", { class: "section-kind" }, section.kind) : "",
          el("p", { class: "section-text" }, section.text),
          el("p", { class: "where" }, `${section.source}, lines ${first}–${last}`),
        ),
      );
    }
    document.getElementById("toc").hidden = procedure.sections.length < 2;
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) {
      target.classList.add("target");
      target.scrollIntoView();
      target.focus({ preventScroll: true });
    }
  }

  getJSON(location.pathname)
    .then(render)
    .catch((error) => {
      title.textContent = "Procedure not available";
      status.textContent = error.message;
    })
    .finally(() => article.removeAttribute("aria-busy"));
}

const form = document.getElementById("search");
const article = document.getElementById("procedure");
if (form) searchPage(form);
if (article) procedurePage(article);
