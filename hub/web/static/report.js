// The public report page (/report, no sign-in): English, French and Spanish, the browser's
// language by default. A report carries a proof of work (reportwork.js, in a Web Worker):
// the page asks the hub for a challenge, the worker finds a nonce, the page sends the report
// and shows its receipt. Every text is set with textContent: nothing typed here, nor any
// answer of the hub, is ever parsed as HTML.

const LANGUAGES = ["en", "fr", "es"];
const API = "/v1/public/reports";

const TEXTS = {
  en: {
    pageTitle: "Report what you saw", skip: "Skip to content",
    title: "Report what you saw",
    intro: "If you saw something that may be human trafficking or exploitation, tell us "
      + "here. You do not need an account, and we do not ask your name.",
    emergency: "In an emergency, call the local emergency number first.",
    privacy: "Do not write your name, phone number or other details that identify you or "
      + "others unless you must. Your report is encrypted when it arrives, read only by "
      + "trained reviewers, and deleted after review. It is never published as text.",
    noscript: "This form needs JavaScript to protect itself from automated floods.",
    textLabel: "What happened?",
    textHint: "Who, what, where and when, as far as you know. At most {max} characters.",
    count: "{n} of {max} characters",
    whereLabel: "Where did it happen? (optional)",
    whereHint: "A town, a country, a place.",
    whenLabel: "When did it happen? (optional)",
    honeypot: "Leave this field empty",
    send: "Send the report",
    working: "Preparing your report: your device is solving a small puzzle that protects "
      + "this form from automated floods. This takes a few seconds.",
    sending: "Sending your report…",
    doneTitle: "Thank you: your report was received",
    receipt: "Your receipt:",
    receiptHint: "Keep it if you want to refer to this report later. It says nothing about "
      + "what you wrote.",
    nextTitle: "What happens next",
    next1: "People trained for this, not a computer alone, read your report.",
    next2: "What they find is added to anonymous statistics on trafficking routes and "
      + "hotspots; your words are never published or shown to member organisations.",
    next3: "Your report's text is deleted after it has been reviewed.",
    next4: "We cannot reply: the report is anonymous. If someone is in danger, call the "
      + "emergency services.",
    again: "Send another report",
    empty: "Please describe what happened.",
    tooLong: "Your report is too long: at most {max} characters.",
    rate: "Too many reports were sent from this connection. Please try again later.",
    unavailable: "This hub is not accepting reports at the moment.",
    network: "The report could not be sent. Check your connection and try again.",
    refused: "The report was refused:",
    noCrypto: "Your browser cannot prepare the report on this connection (it needs a "
      + "secure, https, connection).",
  },
  fr: {
    pageTitle: "Signaler ce que vous avez vu", skip: "Aller au contenu",
    title: "Signaler ce que vous avez vu",
    intro: "Si vous avez vu quelque chose qui pourrait relever de la traite ou de "
      + "l'exploitation d'êtres humains, dites-le-nous ici. Vous n'avez pas besoin de compte "
      + "et nous ne vous demandons pas votre nom.",
    emergency: "En cas d'urgence, appelez d'abord le numéro d'urgence local.",
    privacy: "N'écrivez pas votre nom, votre numéro de téléphone ni d'autres informations "
      + "qui vous identifient, vous ou d'autres personnes, sauf si c'est nécessaire. Votre "
      + "signalement est chiffré dès son arrivée, lu uniquement par des personnes formées, "
      + "puis supprimé après examen. Il n'est jamais publié tel quel.",
    noscript: "Ce formulaire a besoin de JavaScript pour se protéger des envois "
      + "automatisés.",
    textLabel: "Que s'est-il passé ?",
    textHint: "Qui, quoi, où et quand, pour autant que vous le sachiez. {max} caractères "
      + "au plus.",
    count: "{n} caractères sur {max}",
    whereLabel: "Où cela s'est-il passé ? (facultatif)",
    whereHint: "Une ville, un pays, un lieu.",
    whenLabel: "Quand cela s'est-il passé ? (facultatif)",
    honeypot: "Laissez ce champ vide",
    send: "Envoyer le signalement",
    working: "Préparation de votre signalement : votre appareil résout une petite énigme "
      + "qui protège ce formulaire des envois automatisés. Cela prend quelques secondes.",
    sending: "Envoi de votre signalement…",
    doneTitle: "Merci : votre signalement a bien été reçu",
    receipt: "Votre reçu :",
    receiptHint: "Conservez-le si vous voulez faire référence à ce signalement plus tard. "
      + "Il ne révèle rien de ce que vous avez écrit.",
    nextTitle: "Et ensuite ?",
    next1: "Des personnes formées, et pas seulement un ordinateur, lisent votre "
      + "signalement.",
    next2: "Ce qu'elles y trouvent alimente des statistiques anonymes sur les routes et les "
      + "lieux de la traite ; vos mots ne sont jamais publiés ni montrés aux organisations "
      + "membres.",
    next3: "Le texte de votre signalement est supprimé après son examen.",
    next4: "Nous ne pouvons pas vous répondre : le signalement est anonyme. Si quelqu'un est "
      + "en danger, appelez les services d'urgence.",
    again: "Envoyer un autre signalement",
    empty: "Décrivez ce qui s'est passé.",
    tooLong: "Votre signalement est trop long : {max} caractères au plus.",
    rate: "Trop de signalements ont été envoyés depuis cette connexion. Réessayez plus "
      + "tard.",
    unavailable: "Ce service n'accepte pas de signalements pour le moment.",
    network: "Le signalement n'a pas pu être envoyé. Vérifiez votre connexion et "
      + "réessayez.",
    refused: "Le signalement a été refusé :",
    noCrypto: "Votre navigateur ne peut pas préparer le signalement sur cette connexion "
      + "(une connexion sécurisée, https, est nécessaire).",
  },
  es: {
    pageTitle: "Informe de lo que vio", skip: "Ir al contenido",
    title: "Informe de lo que vio",
    intro: "Si vio algo que podría ser trata o explotación de personas, cuéntenoslo aquí. "
      + "No necesita una cuenta y no le pedimos su nombre.",
    emergency: "En caso de emergencia, llame primero al número de emergencias local.",
    privacy: "No escriba su nombre, su número de teléfono ni otros datos que le identifiquen "
      + "a usted o a otras personas, salvo que sea necesario. Su informe se cifra al llegar, "
      + "solo lo leen personas formadas para ello y se borra después de revisarlo. Nunca se "
      + "publica como texto.",
    noscript: "Este formulario necesita JavaScript para protegerse de envíos automatizados.",
    textLabel: "¿Qué pasó?",
    textHint: "Quién, qué, dónde y cuándo, en la medida en que lo sepa. Como máximo {max} "
      + "caracteres.",
    count: "{n} de {max} caracteres",
    whereLabel: "¿Dónde pasó? (opcional)",
    whereHint: "Una ciudad, un país, un lugar.",
    whenLabel: "¿Cuándo pasó? (opcional)",
    honeypot: "Deje este campo vacío",
    send: "Enviar el informe",
    working: "Preparando su informe: su dispositivo está resolviendo un pequeño acertijo que "
      + "protege este formulario de envíos automatizados. Tarda unos segundos.",
    sending: "Enviando su informe…",
    doneTitle: "Gracias: recibimos su informe",
    receipt: "Su comprobante:",
    receiptHint: "Guárdelo si quiere referirse a este informe más adelante. No dice nada de "
      + "lo que escribió.",
    nextTitle: "¿Qué pasa ahora?",
    next1: "Personas formadas para ello, no solo un ordenador, leen su informe.",
    next2: "Lo que encuentran se suma a estadísticas anónimas sobre rutas y lugares de la "
      + "trata; sus palabras nunca se publican ni se muestran a las organizaciones miembro.",
    next3: "El texto de su informe se borra después de revisarlo.",
    next4: "No podemos responderle: el informe es anónimo. Si alguien está en peligro, llame "
      + "a los servicios de emergencia.",
    again: "Enviar otro informe",
    empty: "Describa lo que pasó.",
    tooLong: "Su informe es demasiado largo: como máximo {max} caracteres.",
    rate: "Se enviaron demasiados informes desde esta conexión. Inténtelo más tarde.",
    unavailable: "Este servicio no acepta informes en este momento.",
    network: "No se pudo enviar el informe. Compruebe su conexión e inténtelo de nuevo.",
    refused: "El informe fue rechazado:",
    noCrypto: "Su navegador no puede preparar el informe con esta conexión (necesita una "
      + "conexión segura, https).",
  },
};

const $ = (id) => document.getElementById(id);
const state = { lang: "en", max: 5000, challenge: null, busy: false };

function t(key, values = {}) {
  const text = TEXTS[state.lang][key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) =>
    (name in values ? values[name] : name === "max" ? state.max.toLocaleString(state.lang)
      : `{${name}}`));
}

function chosenLanguage() {
  // ?lang= (the switch keeps it in the address), else the browser's first language we speak
  const asked = new URLSearchParams(location.search).get("lang");
  if (LANGUAGES.includes(asked)) return asked;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

function render() {
  document.documentElement.lang = state.lang;
  document.title = t("pageTitle");
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
  }
  $("report-text").maxLength = state.max;
  count();
}

function count() {
  const n = $("report-text").value.length;
  $("report-count").textContent = t("count", { n: n.toLocaleString(state.lang) });
}

function setLanguage(lang) {
  state.lang = lang;
  const url = new URL(location.href);
  url.searchParams.set("lang", lang);
  history.replaceState(null, "", url);
  render();
}

function showError(message, detail) {
  const box = $("report-error");
  box.replaceChildren();
  if (!message) { box.className = ""; return; }
  box.className = "error";
  const strong = document.createElement("strong");
  strong.textContent = message;
  box.append(strong);
  if (detail) {
    const more = document.createElement("div");
    more.textContent = detail;  // the hub's reason, as text
    box.append(more);
  }
}

async function problem(response) {
  try { return await response.json(); } catch { return {}; }
}

function explain(status, body) {
  // The hub's refusal in the page's language, with its own reason when it helps.
  if (status === 429) return [t("rate"), null];
  if (status === 503) return [t("unavailable"), null];
  if (status === 413 || (body.field === "text" && body.max_chars)) return [t("tooLong"), null];
  return [t("refused"), body.detail || `HTTP ${status}`];
}

async function freshChallenge() {
  // A challenge with at least a minute left (each is answered once: a used one is dropped)
  const now = Date.now();
  if (state.challenge && Date.parse(state.challenge.expires_at) - now > 60_000) {
    return state.challenge;
  }
  const response = await fetch(`${API}/challenge`, { cache: "no-store" });
  if (!response.ok) {
    const body = await problem(response);
    throw Object.assign(new Error("challenge"), { status: response.status, body });
  }
  state.challenge = await response.json();
  state.max = state.challenge.max_chars || state.max;
  render();
  return state.challenge;
}

function work(challenge) {
  // The worker's nonce for `challenge`; the progress bar shows the chance it is found by now
  return new Promise((resolve, reject) => {
    const worker = new Worker("/ui/static/reportwork.js");
    const expected = 2 ** challenge.bits;
    worker.onmessage = (event) => {
      const { nonce, tried, error } = event.data;
      if (tried) {
        $("report-bar").value = Math.min(99, Math.round(100 * (1 - Math.exp(-tried / expected))));
      }
      if (error) { worker.terminate(); reject(new Error(error)); }
      if (nonce !== undefined) { worker.terminate(); resolve(nonce); }
    };
    worker.onerror = (event) => { worker.terminate(); reject(new Error(event.message)); };
    worker.postMessage({ challenge: challenge.challenge, bits: challenge.bits });
  });
}

async function send(fields, retry = true) {
  const challenge = await freshChallenge();
  $("report-progress").hidden = false;
  $("report-bar").value = 0;
  const nonce = await work(challenge);
  $("report-bar").value = 100;
  state.challenge = null;  // spent, whatever the answer
  $("report-status").textContent = t("sending");
  const response = await fetch(API, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...fields, challenge: challenge.challenge, nonce }),
  });
  const body = await problem(response);
  if (response.status === 202) return body.receipt;
  if (retry && (body.field === "challenge" || body.field === "nonce")) {
    return send(fields, false);  // expired or used meanwhile: once more, with a new one
  }
  throw Object.assign(new Error("refused"), { status: response.status, body });
}

async function submit(event) {
  event.preventDefault();
  if (state.busy) return;
  showError(null);
  const text = $("report-text").value;
  if (!text.trim()) { showError(t("empty")); $("report-text").focus(); return; }
  if (text.length > state.max) { showError(t("tooLong")); $("report-text").focus(); return; }
  if (!(globalThis.crypto && crypto.subtle && globalThis.Worker)) {
    showError(t("noCrypto"));
    return;
  }
  const fields = { text, language: state.lang };
  const where = $("report-where").value.trim();
  const when = $("report-when").value;
  const website = $("report-website").value;
  if (where) fields.where = where;
  if (when) fields.when = when;
  if (website) fields.website = website;
  state.busy = true;
  $("report-send").disabled = true;
  try {
    const receipt = await send(fields);
    $("report-receipt").textContent = receipt;
    $("report-form").hidden = true;
    $("report-done").hidden = false;
    $("report-done").focus();
    $("report-form").reset();
  } catch (error) {
    if (error.status) showError(...explain(error.status, error.body || {}));
    else showError(t("network"));
  } finally {
    state.busy = false;
    $("report-send").disabled = false;
    $("report-progress").hidden = true;
    $("report-status").textContent = "";
  }
}

function again() {
  $("report-done").hidden = true;
  $("report-form").hidden = false;
  count();
  $("report-text").focus();
}

function start() {
  state.lang = chosenLanguage();
  $("report-when").max = new Date().toISOString().slice(0, 10);
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang));
  }
  $("report-text").addEventListener("input", count);
  $("report-form").addEventListener("submit", submit);
  $("report-again").addEventListener("click", again);
  render();
  // learn the limits, and whether the hub takes reports at all, before anyone types
  freshChallenge().catch((error) => {
    if (error.status === 503) {
      showError(t("unavailable"));
      $("report-send").disabled = true;
    }
  });
}

start();
