/* Progressive enhancement for the patient pages. Every page works without this file. */
(function () {
  "use strict";

  // Error summaries and problem notices take focus, so screen readers announce them first.
  var summary = document.querySelector("[data-error-summary], [data-focus-on-load]");
  if (summary) summary.focus();

  // A form is sent once, even after a double tap.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-once]")) return;
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.setAttribute("aria-disabled", "true"); });
  });

  // Red-flag questions: say at once, beside the questions, what a "yes" leads to.
  var preview = document.querySelector("[data-urgent-preview]");
  if (preview) {
    var update = function () {
      preview.hidden = !document.querySelector("input[data-red-flag][value=yes]:checked");
    };
    document.addEventListener("change", function (e) { if (e.target.matches("[data-red-flag]")) update(); });
    update();
  }

  // Slot picker: on wide screens every day is unfolded; weeks and practitioners load in place.
  var wide = window.matchMedia("(min-width: 40em)");
  function unfold(root) {
    if (wide.matches) root.querySelectorAll("details.day").forEach(function (d) { d.open = true; });
  }
  function loadPicker(url, push) {
    var picker = document.getElementById("picker");
    if (!picker || !window.fetch) { window.location.href = url; return; }
    picker.setAttribute("aria-busy", "true");
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        // Only <main> is parsed, into an inert template: the page's <head> is not needed.
        var box = document.createElement("template");
        box.innerHTML = html.slice(html.indexOf("<main"), html.lastIndexOf("</main>"));
        var fresh = box.content.getElementById("picker");
        if (!fresh) throw new Error("no picker");
        picker.replaceWith(fresh);
        // The waitlist offer follows the practitioner and week shown.
        var aside = document.getElementById("waitlist-aside");
        var freshAside = box.content.getElementById("waitlist-aside");
        if (aside && freshAside) aside.replaceWith(freshAside);
        unfold(fresh);
        if (push) history.pushState({ picker: true }, "", url);
        var heading = document.getElementById("week-heading");
        if (heading) heading.focus();
      })
      .catch(function () { window.location.href = url; });
  }
  var pickerRoot = document.getElementById("picker");
  if (pickerRoot) {
    unfold(pickerRoot);
    document.addEventListener("click", function (e) {
      var link = e.target.closest("a[data-week-link]");
      if (!link || e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      loadPicker(link.href, true);
    });
    window.addEventListener("popstate", function () { loadPicker(window.location.href, false); });
    var filter = document.querySelector("[data-picker-filter]");
    if (filter) {
      filter.addEventListener("submit", function (e) {
        e.preventDefault();
        var params = new URLSearchParams(new FormData(filter));
        loadPicker(filter.action + "?" + params.toString(), true);
      });
    }
  }
})();
