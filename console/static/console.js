// The operator console's only script: sign-in, keyboard shortcuts, and the forms' little helpers.
// Every page works without it except sign-in; shortcuts only save clicks.
"use strict";

(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  // Sign-in: the key goes once, in the Authorization header; the answer sets the session cookie.
  const signIn = $("#sign-in");
  if (signIn) {
    signIn.addEventListener("submit", async (event) => {
      event.preventDefault();
      const outcome = $("#outcome");
      const key = $("#key").value.trim();
      const answer = await fetch(new URL("session", window.location.href), {
        method: "POST",
        headers: { Authorization: "Bearer " + key },
        credentials: "same-origin",
      });
      if (answer.ok) {
        outcome.textContent = "Signed in.";
        window.location.assign(signIn.dataset.next);
        return;
      }
      outcome.textContent = {
        401: "Refused: this key is unknown, revoked or locked.",
        403: "Refused: client keys cannot sign in to the console.",
        429: "Refused: too many failed attempts from this address; try again later.",
      }[answer.status] || "Refused (" + answer.status + ").";
    });
  }

  // The help overlay.
  const help = $("#shortcuts");
  const showHelp = () => help && !help.open && help.showModal();
  $$("[data-help]").forEach((button) => button.addEventListener("click", showHelp));

  // Rows of a list: j/k move, x selects, o or Enter opens.
  const rows = () => $$("tr[data-row]");
  let current = -1;
  const mark = (index) => {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(all.length - 1, index));
    all.forEach((row, i) => {
      row.classList.toggle("current", i === current);
      row.setAttribute("aria-current", i === current ? "true" : "false");
    });
    all[current].scrollIntoView({ block: "nearest" });
  };
  const currentRow = () => rows()[current];

  // Select all on this page; "all matching" stands for every order the filter finds.
  const everyOnPage = $("#select-page");
  if (everyOnPage) {
    everyOnPage.addEventListener("change", () => {
      $$("input[name=order_id]").forEach((box) => { box.checked = everyOnPage.checked; });
    });
  }

  // Actions: a form marked data-actions has a button per action and a reason field.
  const actions = $("form[data-actions]");
  const reasonDialog = $("#reason");
  const selected = () => $$("input[name=order_id]:checked").length;
  const allMatching = () => { const box = $("input[name=all_matching]"); return box && box.checked; };
  const say = (text) => { const note = $("#action-note"); if (note) note.textContent = text; };

  const act = (action) => {
    if (!actions) return;
    const button = $(`button[name=action][value=${action}]`, actions);
    if (!button) return;
    if (actions.dataset.actions === "batch" && !selected() && !allMatching()) {
      const row = currentRow();
      const box = row && $("input[name=order_id]", row);
      if (!box) { say("Select orders first: move with j and k, select with x."); return; }
      box.checked = true;
    }
    const reason = $("input[name=reason]", actions);
    if (button.dataset.needsReason !== undefined && reason && !reason.value.trim() && reasonDialog) {
      $("#reason-title").textContent = button.dataset.needsReason;
      $("#reason-text").value = "";
      reasonDialog.returnValue = "";
      reasonDialog.onclose = () => {
        const text = $("#reason-text").value.trim();
        if (reasonDialog.returnValue === "confirm" && text) {
          reason.value = text;
          actions.requestSubmit(button);
        }
      };
      reasonDialog.showModal();
      return;
    }
    actions.requestSubmit(button);
  };

  // Clicking an action button that needs a reason, with none typed, asks for one too.
  if (actions) {
    $$("button[data-needs-reason]", actions).forEach((button) => {
      button.addEventListener("click", (event) => {
        const reason = $("input[name=reason]", actions);
        if (reason && !reason.value.trim()) { event.preventDefault(); act(button.value); }
      });
    });
  }

  let pendingG = false;
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if ($$("dialog").some((dialog) => dialog.open)) return;
    const target = event.target;
    const field = target instanceof HTMLInputElement && !/^(checkbox|radio|button|submit)$/.test(target.type);
    const typing = field || (target instanceof HTMLElement && (target.isContentEditable || /^(TEXTAREA|SELECT)$/.test(target.tagName)));
    if (typing) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const key = event.key;
    if (pendingG) {
      pendingG = false;
      const link = $(`a[data-go="${CSS.escape(key)}"]`);
      if (link) { event.preventDefault(); window.location.assign(link.href); }
      return;
    }
    const row = currentRow();
    switch (key) {
      case "?": event.preventDefault(); showHelp(); break;
      case "/": {
        const search = $("[data-search]");
        if (search) { event.preventDefault(); search.focus(); search.select(); }
        break;
      }
      case "g": pendingG = true; break;
      case "j": event.preventDefault(); mark(current + 1); break;
      case "k": event.preventDefault(); mark(current < 0 ? 0 : current - 1); break;
      case "x": {
        const box = row && $("input[name=order_id]", row);
        if (box) { event.preventDefault(); box.checked = !box.checked; }
        break;
      }
      case "o":
      case "Enter": {
        const link = row && $("a[data-open]", row);
        if (link) { event.preventDefault(); window.location.assign(link.href); }
        break;
      }
      case "a": event.preventDefault(); act("approve"); break;
      case "r": event.preventDefault(); act("reject"); break;
      case "c": event.preventDefault(); act("cancel"); break;
      default: break;
    }
  });
})();
