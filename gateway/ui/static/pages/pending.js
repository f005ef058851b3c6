// Pages for APIs other work adds (prompts, applications, datasets, evaluations, jobs): each one
// probes its endpoint and either lists what it returns or says the server does not have it.
import { t } from "../i18n.js";
import { h, table } from "../dom.js";
import { probe } from "../api.js";

function page(id, path) {
  return {
    id,
    async render(main) {
      const result = await probe(path);
      if (!result.available) {
        main.append(h("div", { class: "notice", role: "status", "data-testid": "unavailable", text: t("pending.unavailable", { path }) }));
        return;
      }
      if (!result.ok) {
        main.append(h("div", { class: "error", role: "alert", text: `${result.status}: ${(result.body && result.body.error && result.body.error.message) || ""}` }));
        return;
      }
      const rows = Array.isArray(result.body && result.body.data) ? result.body.data : [];
      const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => rows.some((r) => typeof r[k] !== "object")).slice(0, 8);
      main.append(h("p", { class: "meta", text: path }), table(keys.map((k) => ({ key: k, label: k })), rows));
    },
  };
}

export const pendingPages = [
  page("prompts", "/api/prompts"),
  page("applications", "/api/applications"),
  page("datasets", "/api/datasets"),
  page("evaluations", "/api/evaluations"),
  page("jobs", "/v1/jobs"),
];
