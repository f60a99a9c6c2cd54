// The web interface: sign-in, then pages chosen by the person's roles (docs/web.md).
// Every page reads and writes through the same public API as the Python client (api.js).

import { api, finishSignIn, session, signIn, signOut } from "./api.js";
import { fill, h, problemBox } from "./dom.js";

const main = document.getElementById("main");

const state = { me: null, pages: [] };

const PAGES = [
  { path: "", title: "Home", roles: null, load: () => import("./home.js") },
  { path: "workspace", title: "Analyst workspace", roles: ["analyst"],
    load: () => import("./workspace.js") },
  { path: "governance", title: "Governance", roles: ["governance"],
    load: () => import("./governance.js") },
  { path: "partner", title: "Partner uploads", roles: ["partner"],
    load: () => import("./partner.js") },
  { path: "review", title: "Review queue", roles: ["reviewer"],
    load: () => import("./review.js") },
  { path: "review-precision", title: "Tag precision", roles: ["reviewer"],
    load: () => import("./precision.js") },
];

function render(title, ...content) {
  fill(main, h("h1", {}, title), ...content);
  document.title = `${title} - tahub`;
}

function nav(current) {
  const links = state.pages.map((page) => h("a", {
    href: `#/${page.path}`, "aria-current": page.path === current ? "page" : false,
  }, page.title));
  document.getElementById("nav").replaceChildren(...links);
}

async function route() {
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  const page = state.pages.find((p) => p.path === path) || state.pages[0];
  nav(page.path);
  try {
    const module = await page.load();
    await module.show({ me: state.me, render, main });
  } catch (error) {
    render(page.title, problemBox(error));
  }
  main.focus();
}

async function start() {
  if (location.pathname === "/ui/callback") {
    try {
      const next = await finishSignIn(location.search);
      history.replaceState(null, "", `/ui${location.hash || next}`); // a click meanwhile wins
    } catch (error) {
      render("Sign-in failed", problemBox(error),
        h("button", { type: "button", onclick: () => signIn("#/") }, "Sign in again"));
      return;
    }
  }
  if (!session()) {
    await signIn(location.hash || "#/");
    return;
  }
  try {
    const [me, info] = await Promise.all([api("/v1/me"), api("/oauth/userinfo")]);
    state.me = { ...me, ...info };
  } catch (error) {
    signOut();
    render("Not signed in", problemBox(error),
      h("button", { type: "button", onclick: () => signIn("#/") }, "Sign in"));
    return;
  }
  state.pages = PAGES.filter((p) => !p.roles || p.roles.some((r) => state.me.roles.includes(r)));
  document.getElementById("who").textContent =
    `${state.me.name || state.me.email || state.me.client_id} · ${state.me.org_name}`;
  const out = document.getElementById("signout");
  out.hidden = false;
  out.onclick = () => { signOut(); location.assign("/ui"); };
  window.addEventListener("hashchange", route);
  await route();
}

start();
