// Asynchronous jobs (/v1/jobs): submit a file (or pasted text) with a type, watch the list's status
// and progress update by themselves, read a result (OCR text with its lines, a summary, or the JSON),
// cancel a queued or running job. A user sees their own jobs; an admin can list everyone's.
import { t } from "../i18n.js";
import { h, field, table, num, errorBox, toast, select, badge, progress, poll, when } from "../dom.js";
import { api } from "../api.js";

const enc = encodeURIComponent;
const TYPES = ["ocr", "summarize", "document_analysis", "transcription"];
const TEXT_TYPES = new Set(["summarize", "document_analysis"]); // the types that take pasted text
const LIVE = new Set(["queued", "running"]);
const ACCEPT = { ocr: ".png,.jpg,.jpeg,.tif,.tiff,.pdf,image/png,image/jpeg,image/tiff,application/pdf", summarize: "", document_analysis: "", transcription: ".wav,.mp3,.flac,.ogg,.webm,.m4a,audio/*" };

const seconds = (v) => (v ? when(v * 1000) : "—");

function jobProgress(job) {
  const p = job.progress || {};
  if (job.status === "succeeded") return progress(1, 1, t("jobs.progress"));
  if (!LIVE.has(job.status)) return "—";
  const steps = p.steps ? p.steps.length : 0;
  const detail = p.detail && p.detail.of ? ` · ${num(p.detail.done)}/${num(p.detail.of)} ${p.detail.unit || ""}` : "";
  return h("span", {}, h("progress", { max: 100, value: p.percent || 0, "aria-label": t("jobs.progress") }),
    ` ${num(p.percent || 0, 0)}%` + (p.step ? ` · ${p.step}` : "") + (steps ? ` (${(p.steps_done || []).length}/${steps})` : "") + detail);
}

function resultView(job, body) {
  const r = body.result || {};
  const parts = [h("h2", { tabindex: "-1", text: t("jobs.result_of", { type: t("jobs.type_" + job.type), name: job.file.name || job.id }) })];
  if (job.type === "ocr") {
    parts.push(h("h3", { text: t("jobs.text") }), h("pre", { class: "result", "data-testid": "job-result", text: r.text || "" }));
    const blocks = (r.pages || []).flatMap((p) => (p.blocks || []).map((b) => ({ page: p.number, source: p.source, ...b })));
    parts.push(h("h3", { text: t("jobs.lines") }), table([
      { key: "page", label: t("jobs.page"), num: true },
      { key: "text", label: t("jobs.text") },
      { key: "confidence", label: t("jobs.confidence"), num: true, fmt: (v) => num(v, 1) },
      { key: "source", label: t("jobs.source"), fmt: (v) => t("jobs.source_" + v) },
    ], blocks));
  } else if (job.type === "summarize") {
    parts.push(h("div", { class: "answer", "data-testid": "job-result", text: r.summary || "" }),
      h("p", { class: "meta", text: `${t("jobs.language")}: ${r.language || "—"} · ${t("jobs.chunks")}: ${num(r.chunks)} · ${t("dim.model")}: ${r.model || "—"} · ${t("m.tokens")}: ${r.usage ? num(r.usage.total_tokens) : "—"}` }));
  } else {
    parts.push(h("pre", { class: "json", "data-testid": "job-result", text: JSON.stringify(r, null, 2) }));
  }
  parts.push(h("details", {}, h("summary", { text: t("exp.raw") }), h("pre", { class: "json", text: JSON.stringify(body, null, 2) })));
  return parts;
}

export default {
  id: "jobs",
  async render(main, ctx) {
    const admin = ctx.me && ctx.me.role === "admin";
    const list = h("div");
    const detail = h("section", { "aria-live": "polite" });
    const status = h("div", { "aria-live": "polite" });
    const type = select({ id: "job-type" }, TYPES.map((v) => [v, t("jobs.type_" + v)]), "ocr");
    const file = h("input", { id: "job-file", type: "file", accept: ACCEPT.ocr });
    const text = h("textarea", { id: "job-text", rows: 3 });
    const textField = field(t("jobs.paste"), text);
    const languages = h("input", { id: "job-languages", placeholder: "ko, en" });
    const maxWords = h("input", { id: "job-max-words", type: "number", min: 10 });
    const langField = field(t("jobs.languages"), languages);
    const wordsField = field(t("jobs.max_words"), maxWords);
    const everyone = h("input", { id: "job-all", type: "checkbox", checked: true });
    const filter = select({ id: "job-status" }, [["", t("jobs.any_status")], ...["queued", "running", "succeeded", "failed", "cancelled"].map((s) => [s, t("jobs.status_" + s)])], "");
    const sync = () => {
      file.accept = ACCEPT[type.value];
      textField.hidden = !TEXT_TYPES.has(type.value);
      langField.hidden = type.value !== "ocr";
      wordsField.hidden = type.value !== "summarize";
    };
    type.addEventListener("change", sync);
    sync();

    const openResult = async (job) => {
      try { detail.replaceChildren(...resultView(job, await api(`/v1/jobs/${enc(job.id)}/result`))); detail.querySelector("h2").focus(); }
      catch (err) { detail.replaceChildren(errorBox(err)); }
    };
    let watching = false;
    const load = async () => {
      const q = new URLSearchParams({ limit: "50" });
      if (admin && everyone.checked) q.set("all", "true");
      if (filter.value) q.set("status", filter.value);
      const jobs = await api(`/v1/jobs?${q}`);
      list.replaceChildren(table([
        { key: "type", label: t("jobs.type"), fmt: (v) => t("jobs.type_" + v) },
        { key: "file", label: t("jobs.file"), fmt: (f) => (f && f.name ? `${f.name} (${num(f.size_bytes)} B)` : "—") },
        { key: "status", label: t("jobs.status"), fmt: (s, j) => h("span", {}, badge(s, t("jobs.status_" + s), { "data-testid": "job-status" }), j.error ? h("div", { class: "meta", text: j.error }) : null) },
        { key: "progress", label: t("jobs.progress"), fmt: (_, j) => jobProgress(j) },
        { key: "usage", label: t("jobs.usage"), fmt: (u) => t("jobs.usage_value", { pages: num(u.pages), tokens: num(u.tokens) }) },
        { key: "created_at", label: t("keys.created"), fmt: seconds },
        { key: "finished_at", label: t("jobs.finished"), fmt: seconds },
        { key: "id", label: t("actions"), fmt: (id, j) => h("span", { class: "row tight" },
          j.status === "succeeded" ? h("button", { type: "button", class: "secondary", text: t("jobs.result"), "aria-label": t("jobs.result_named", { name: j.file.name || id }), onclick: () => openResult(j) }) : null,
          LIVE.has(j.status) ? h("button", { type: "button", class: "danger", text: t("jobs.cancel"), "aria-label": t("jobs.cancel_named", { name: j.file.name || id }), onclick: async () => {
            try { await api(`/v1/jobs/${enc(id)}`, { method: "DELETE" }); toast(t("jobs.cancelled")); await load(); }
            catch (err) { status.replaceChildren(errorBox(err)); }
          } }) : null) },
      ], jobs.data));
      // While a job is queued or running the list refreshes itself (once per second), then stops.
      if (jobs.data.some((j) => LIVE.has(j.status)) && !watching) {
        watching = true;
        poll(list, 1000, async () => { const live = await load(); watching = live; return live; });
      }
      return jobs.data.some((j) => LIVE.has(j.status));
    };
    everyone.addEventListener("change", load);
    filter.addEventListener("change", load);

    const form = h("form", { class: "grid", onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      const data = new FormData();
      data.set("type", type.value);
      if (file.files[0]) data.set("file", file.files[0]);
      else if (TEXT_TYPES.has(type.value) && text.value.trim()) data.set("file", new Blob([text.value], { type: "text/plain" }), "pasted.txt");
      else { status.replaceChildren(h("div", { class: "error", role: "alert", text: t("jobs.need_file") })); return; }
      const options = {};
      const langs = languages.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (type.value === "ocr" && langs.length) options.languages = langs;
      if (type.value === "summarize" && maxWords.value) options.max_words = Number(maxWords.value);
      if (Object.keys(options).length) data.set("options", JSON.stringify(options));
      try {
        const job = await api("/v1/jobs", { method: "POST", body: data });
        toast(t("jobs.submitted"));
        status.replaceChildren(h("div", { class: "notice", role: "status", text: t("jobs.queued_as", { id: job.id }) }));
        form.reset();
        sync();
        await load();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    } },
    field(t("jobs.type"), type), field(t("jobs.file"), file), textField, langField, wordsField,
    h("button", { type: "submit", id: "submit-job", text: t("jobs.submit") }));
    main.append(h("h2", { text: t("jobs.new") }), h("p", { class: "meta", text: t("jobs.hint") }), form, status,
      h("h2", { text: admin ? t("jobs.all_list") : t("jobs.own_list") }),
      h("div", { class: "row" }, field(t("jobs.status"), filter), admin ? h("label", { class: "inline" }, everyone, t("jobs.everyone")) : null),
      list, detail);
    await load();
  },
};
