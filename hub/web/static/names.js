// Names for ids: the API speaks in ids (org_..., usr_..., tahub_...), people read names.
// GET /v1/directory holds what the signed-in person may see (hub/identity/directory.py):
// every organisation's name; the names of people of their own organisation, or of everyone
// for a governance officer. Anyone else's person is shown as its organisation. The id is
// always on hover (the title), and stays in the API and in downloads.

import { api } from "./api.js";
import { h } from "./dom.js";

export class Names {
  constructor(directory = {}) {
    this.orgs = new Map((directory.organisations || []).map((o) => [o.id, o]));
    this.people = new Map((directory.people || []).map((p) => [p.id, p]));
  }

  orgName(id) {
    // An organisation's name, or its id when the directory does not know it.
    const found = id ? this.orgs.get(id) : null;
    return found ? found.name : (id || "");
  }

  org(id) {
    // An organisation's name, its id on hover.
    if (!id) return "";
    return h("span", { class: "name", title: id, "data-id": id }, this.orgName(id));
  }

  whoText(actor, org) {
    // {text, title}: who an audit entry's actor (and organisation) is, in words.
    const ids = [actor, org].filter(Boolean).join(" · ");
    const of = (prefix, alone) => (org ? `${prefix} ${this.orgName(org)}` : alone);
    if (!actor) return { text: org ? this.orgName(org) : "the hub", title: ids || null };
    if (actor.startsWith("hub:")) {
      return { text: "the hub", title: actor === "hub:" ? null : actor };
    }
    if (actor.startsWith("cli:")) {
      return { text: `the hub's administrator (${actor.slice(4)})`, title: actor };
    }
    if (actor.startsWith("usr_")) {
      const person = this.people.get(actor);
      if (person) {
        return { text: `${person.name} (${this.orgName(person.org || org)})`, title: ids };
      }
      return { text: of("someone at", "someone"), title: ids };
    }
    if (actor.startsWith("tahub_")) return { text: of("a client of", "a client"), title: ids };
    return { text: actor, title: ids };
  }

  who(actor, org) {
    // Who acted, as an element: a person's name and organisation, a client's organisation,
    // the hub or its administrator; the ids on hover.
    const { text, title } = this.whoText(actor, org);
    return h("span", { class: "name", title, "data-id": actor || org || "" }, text);
  }
}

export async function names() {
  // The directory as the signed-in person may read it.
  return new Names(await api("/v1/directory"));
}
