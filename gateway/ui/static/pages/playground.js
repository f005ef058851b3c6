// Chats through /v1/chat/completions with the signed-in session's token; streamed answers are
// appended token by token, and each answer shows the x-prism-* headers, tokens and cost.
import { t } from "../i18n.js";
import { h, field, num, usd, errorBox } from "../dom.js";
import { api, raw } from "../api.js";

async function prices(ctx) {
  if (ctx.me.role !== "admin") return {};
  try { return (await api("/admin/config")).config.models || {}; } catch { return {}; }
}

function parseRoute(value) {
  return Object.fromEntries((value || "").split(";").filter((p) => p.includes("=")).map((p) => p.split("=", 2)));
}

export default {
  id: "playground",
  async render(main, ctx) {
    const listed = await api("/v1/models").catch(() => ({ data: [] }));
    const ids = [...new Set(["auto", ...listed.data.map((m) => m.id)])];
    const priceOf = await prices(ctx);
    const model = h("select", { id: "pg-model" }, ids.map((id) => h("option", { value: id, text: id })));
    const stream = h("input", { id: "pg-stream", type: "checkbox", checked: true });
    const system = h("input", { id: "pg-system", placeholder: t("pg.system_hint") });
    const prompt = h("textarea", { id: "pg-prompt", rows: 3, cols: 60, required: true });
    const log = h("div", { class: "chat", id: "pg-chat", role: "log", "aria-live": "polite", "aria-label": t("pg.conversation") });
    const history = [];
    const send = h("button", { type: "submit", id: "pg-send", text: t("pg.send") });

    const meta = (headers, usage, served, firstMs, totalMs) => {
      const route = parseRoute(headers.get("x-prism-route"));
      const price = priceOf[served] || null;
      const cost = usage && price ? (usage.prompt_tokens * price.price_input_per_mtok + usage.completion_tokens * price.price_output_per_mtok) / 1e6 : null;
      return h("div", { class: "meta", "data-testid": "answer-meta" },
        h("div", {}, `${t("pg.route")}: `, h("code", { text: headers.get("x-prism-route") || "—" })),
        h("div", { text: `${t("pg.served")}: ${served || "—"}` + (route.intent ? ` · ${t("dim.intent")}: ${route.intent}` : "") + (route.tier ? ` · ${t("models.tier")}: ${route.tier}` : "") +
          (headers.get("x-prism-fallback") ? ` · ${t("pg.fallback")}: ${headers.get("x-prism-fallback")}` : "") + (headers.get("x-prism-cache") ? ` · ${t("pg.cache")}: ${headers.get("x-prism-cache")}` : "") }),
        h("div", { text: `${t("pg.guard")}: ${headers.get("x-prism-guard") || t("pg.guard_none")}` }),
        h("div", { "data-testid": "answer-usage", text: `${t("m.tokens")}: ${usage ? `${num(usage.prompt_tokens)} + ${num(usage.completion_tokens)}` : "—"} · ${t("m.cost")}: ${cost === null ? t("pg.cost_na") : usd(cost)} · ${t("pg.ttft")}: ${firstMs === null ? "—" : num(firstMs) + " ms"} · ${t("pg.total")}: ${num(totalMs)} ms` }));
    };

    const form = h("form", { onsubmit: async (e) => {
      e.preventDefault();
      const text = prompt.value.trim();
      if (!text) return;
      send.disabled = true;
      history.push({ role: "user", content: text });
      log.append(h("div", { class: "msg user" }, h("span", { class: "who", text: t("pg.you") }), text));
      prompt.value = "";
      const out = h("span", { class: "answer", "data-testid": "answer" });
      const bubble = h("div", { class: "msg" }, h("span", { class: "who", text: "Prism" }), out);
      log.append(bubble);
      const messages = system.value.trim() ? [{ role: "system", content: system.value.trim() }, ...history] : [...history];
      const body = { model: model.value, messages };
      if (stream.checked) { body.stream = true; body.stream_options = { include_usage: true }; }
      const started = performance.now();
      let first = null, usage = null, served = null, answer = "";
      try {
        const r = await raw("/v1/chat/completions", { method: "POST", json: body });
        if (!r.ok) { const b = await r.json().catch(() => null); throw new Error((b && b.error && b.error.message) || `HTTP ${r.status}`); }
        if (stream.checked) {
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const event = buf.slice(0, i); buf = buf.slice(i + 2);
              for (const line of event.split("\n")) {
                if (!line.startsWith("data:")) continue;
                const data = line.slice(5).trim();
                if (data === "[DONE]") continue;
                const chunk = JSON.parse(data);
                if (chunk.error) throw new Error(chunk.error.message);
                served = chunk.model || served;
                if (chunk.usage) usage = chunk.usage;
                const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
                if (delta) { if (first === null) first = performance.now() - started; answer += delta; out.textContent = answer; log.scrollTop = log.scrollHeight; }
              }
            }
          }
        } else {
          const b = await r.json();
          answer = b.choices[0].message.content || ""; usage = b.usage; served = b.model; first = null;
          out.textContent = answer;
        }
        history.push({ role: "assistant", content: answer });
        served = r.headers.get("x-prism-model") || served;
        bubble.append(meta(r.headers, usage, served, first === null ? null : Math.round(first), Math.round(performance.now() - started)));
      } catch (err) {
        history.pop();
        bubble.append(errorBox(err));
      } finally { send.disabled = false; prompt.focus(); }
    } },
    h("div", { class: "row" }, field(t("pg.model"), model), h("label", { class: "inline" }, stream, " " + t("pg.stream")), field(t("pg.system"), system)),
    log, h("div", { class: "row" }, field(t("pg.prompt"), prompt), send,
      h("button", { type: "button", class: "secondary", text: t("pg.clear"), onclick: () => { history.length = 0; log.replaceChildren(); } })));
    prompt.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });
    main.append(h("p", { class: "meta", text: t("pg.hint") }), form);
  },
};
