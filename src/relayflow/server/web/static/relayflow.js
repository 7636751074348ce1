// The review pages' few behaviours: keyboard shortcuts, the correction's JSON check, and the
// run page's live update (the API's event stream). No framework, nothing from the internet.
"use strict";

(function () {
  const $ = (selector) => document.querySelector(selector);

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  function submit(form) {
    if (!form) return;
    if (form.requestSubmit) form.requestSubmit();
    else form.submit();
  }

  // ---- the correction: one JSON object, checked here and again by the server
  function checkJson(form) {
    const area = form.querySelector("textarea");
    const error = form.querySelector(".error");
    let problem = null;
    try {
      const value = JSON.parse(area.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        problem = "The correction must be a JSON object: {…}.";
      }
    } catch (e) {
      problem = "The correction is not valid JSON: " + e.message;
    }
    area.setAttribute("aria-invalid", problem ? "true" : "false");
    if (error) {
      error.textContent = problem || "";
      error.hidden = !problem;
    }
    return !problem;
  }

  document.querySelectorAll("form[data-json-form]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!checkJson(form)) {
        event.preventDefault();
        form.querySelector("textarea").focus();
      }
    });
  });

  // one submission per form: a second Enter must not decide twice
  document.querySelectorAll("form[method=post]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
    });
  });

  // ---- keyboard shortcuts
  function move(step) {
    const link = $(`a[data-nav=${step > 0 ? "next" : "prev"}]`);
    if (link) { window.location.assign(link.href); return; }
    const items = Array.from(document.querySelectorAll("[data-nav-list] a.item"));
    if (!items.length) return;
    const at = items.indexOf(document.activeElement);
    const to = at < 0 ? (step > 0 ? 0 : items.length - 1)
      : Math.min(items.length - 1, Math.max(0, at + step));
    items.forEach((a) => a.closest("tr").classList.remove("selected"));
    items[to].focus();
    items[to].closest("tr").classList.add("selected");
  }

  document.addEventListener("keydown", (event) => {
    const help = $("#help");
    const correct = $("#correct-form");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (correct) { event.preventDefault(); submit(correct); }
      return;
    }
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (help && help.open && event.key !== "?") return;
    switch (event.key) {
      case "?":
        if (help) { help.open ? help.close() : help.showModal(); }
        break;
      case "a":
        submit($("#approve-form"));
        break;
      case "c":
        if (correct) { event.preventDefault(); $("#correction").focus(); }
        break;
      case "j":
        move(1);
        break;
      case "k":
        move(-1);
        break;
      default:
        return;
    }
  });

  // ---- the run page follows the run: reload when a step or the run changes
  const run = $("#run[data-live]");
  if (run && window.EventSource) {
    const rendered = Number(run.dataset.steps);
    let replayed = 0;
    let reloading = false;
    const source = new EventSource(`/v1/runs/${encodeURIComponent(run.dataset.live)}/events`);
    const reload = () => {
      if (reloading) return;
      reloading = true;
      source.close();
      window.location.reload();
    };
    source.addEventListener("run_started", (e) => {
      if (JSON.parse(e.data).status !== run.dataset.status) reload();
    });
    for (const name of ["step_started", "step_finished", "step_failed", "step_escalated",
                        "step_cancelled", "review_decided"]) {
      source.addEventListener(name, (e) => {
        const data = JSON.parse(e.data);
        if (data.replayed) {
          replayed += 1;
          if (replayed > rendered) reload();  // finished between the page and the stream
        } else {
          reload();
        }
      });
    }
    source.addEventListener("run_finished", reload);
  }
})();
