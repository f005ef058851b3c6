import { t, lang, setLang, applyStatic } from "./i18n.js";
import { api, login, session, clearSession, setSignedOut, raw } from "./api.js";
import { h, errorBox, field } from "./dom.js";
import overview from "./pages/overview.js";
import keys from "./pages/keys.js";
import users from "./pages/users.js";
import usage from "./pages/usage.js";
import models from "./pages/models.js";
import experiments from "./pages/experiments.js";
import playground from "./pages/playground.js";
import prompts from "./pages/prompts.js";
import applications from "./pages/applications.js";
import datasets from "./pages/datasets.js";
import evaluations from "./pages/evaluations.js";
import jobs from "./pages/jobs.js";

const PAGES = [overview, playground, keys, usage, users, models, experiments, prompts, applications, datasets, evaluations, jobs];
const ctx = { me: null, timers: [] };
const main = document.getElementById("main");
const nav = document.getElementById("nav");

function clearTimers() { ctx.timers.forEach(clearInterval); ctx.timers = []; }

function visible() { return PAGES.filter((p) => !p.admin || (ctx.me && ctx.me.role === "admin")); }

function renderNav(current) {
  nav.replaceChildren(...visible().map((p) => h("a", { href: "#/" + p.id, "aria-current": p.id === current ? "page" : null, "data-page": p.id, text: t("nav." + p.id) })));
  nav.hidden = false;
}

function showLogin(message) {
  clearTimers();
  ctx.me = null;
  nav.hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const status = h("div", { "aria-live": "polite" }, message ? h("div", { class: "notice", text: message }) : null);
  const form = h("form", { class: "login", onsubmit: async (e) => {
    e.preventDefault();
    status.replaceChildren();
    try { await login(email.value, password.value); await start(); }
    catch (err) { status.replaceChildren(errorBox(err)); }
  } },
  h("h1", { text: t("login.title") }), field(t("login.email"), email), field(t("login.password"), password),
  h("button", { type: "submit", text: t("login.submit") }), status);
  main.replaceChildren(form);
  document.title = t("login.title") + " · Prism";
  email.focus();
}

async function route() {
  clearTimers();
  if (!ctx.me) return;
  const id = (location.hash.replace(/^#\//, "") || "overview").split("?")[0];
  const page = visible().find((p) => p.id === id) || visible()[0];
  renderNav(page.id);
  const title = t("nav." + page.id);
  document.title = title + " · Prism";
  // Each visit renders into a fresh container: a slow answer for a page already left lands in a
  // detached element instead of the page now shown.
  const view = h("div");
  main.replaceChildren(h("h1", { text: title }), view);
  delete main.dataset.ready;
  try { await page.render(view, ctx); }
  catch (err) { view.append(errorBox(err)); }
  if (view.isConnected) main.dataset.ready = page.id; // the first data is on screen (tests wait on it)
  main.focus({ preventScroll: true });
}

async function start() {
  if (!session()) return showLogin();
  try { ctx.me = await api("/users/me"); }
  catch { clearSession(); return showLogin(); }
  document.getElementById("who").textContent = `${ctx.me.email} (${t("role." + ctx.me.role)})`;
  document.getElementById("logout").hidden = false;
  await route();
}

setSignedOut(() => showLogin(t("login.expired")));
window.addEventListener("hashchange", route);
const langSelect = document.getElementById("lang");
langSelect.value = lang();
langSelect.addEventListener("change", () => { setLang(langSelect.value); applyStatic(); ctx.me ? start() : showLogin(); });
document.getElementById("logout").addEventListener("click", async () => {
  await raw("/auth/logout", { method: "POST" }).catch(() => null);
  clearSession();
  showLogin();
});
applyStatic();
start();
