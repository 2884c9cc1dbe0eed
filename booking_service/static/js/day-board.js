/* The staff console's only script (served from this site: CSP script-src 'self', no inline code).
 *
 * Day view: keeps the board live. Every few seconds it asks /staff/day/fragment whether the board
 * changed (If-None-Match with the board's ETag: "304 Not Modified" when nothing did) and swaps in
 * the new board when it did, keeping the focus, the scroll positions and anything being typed: it
 * waits while a form inside the board has the focus or a pointer is pressed on the board. It stops
 * while the tab is hidden and asks at once when it shows again. When the sign-in has ended (the
 * fragment answers with a redirect to the login page) it takes the board off the screen.
 * Arrow keys move between the board's times and practitioners (one tab stop for the whole grid).
 * A visit can be dragged onto a free time (any practitioner's column): a dialog asks to confirm,
 * then posts the move as the appointment's Reschedule page does, and the board comes back with
 * the result; the server checks the move as any other (a time too short is refused there).
 *
 * Day sheet: shows the Print button.
 *
 * Without this script every page still works: the board is a table of links and a reload shows
 * changes; each appointment's page has "Reschedule or move…" (the keyboard's way to move it).
 */
(function () {
  "use strict";

  var printButton = document.querySelector("[data-print]");
  if (printButton) {
    printButton.hidden = false;
    printButton.addEventListener("click", function () { window.print(); });
  }

  var board = document.querySelector("[data-live-board]");
  if (!board) { return; }

  var url = board.getAttribute("data-live-url");
  var etag = board.getAttribute("data-etag");
  var interval = Number(board.getAttribute("data-live-interval")) || 4000;
  var statusLine = document.querySelector("[data-live-status]");
  var waiting = null;     // a newer board held back while the user is busy in the board
  var pressed = false;    // a pointer is down on the board (a click is under way)
  var dragged = null;     // the visit being dragged to another time
  var moveDialog = document.querySelector("[data-move-dialog]");
  var timer = null;
  var inFlight = false;
  var stopped = false;
  var failures = 0;

  var zone = board.getAttribute("data-zone");  // the location's: every time on the page is in it

  function clock() {
    var options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    try {
      return new Date().toLocaleTimeString([], zone ? Object.assign({ timeZone: zone }, options) : options);
    } catch (unknownZone) {
      return new Date().toLocaleTimeString([], options);
    }
  }

  function say(text) {
    if (statusLine) { statusLine.textContent = text; }
  }

  function busy() {
    var active = document.activeElement;
    if (pressed || dragged) { return true; }
    if (moveDialog && moveDialog.open) { return true; }
    if (active && board.contains(active) && active.closest("form")) { return true; }
    return Boolean(board.querySelector("details[open], dialog[open]"));
  }

  function scrollers() {
    return Array.prototype.slice.call(board.querySelectorAll("[data-board-scroll]"));
  }

  function swap(html) {
    var active = document.activeElement;
    var focusId = active && board.contains(active) ? active.id : null;
    var positions = scrollers().map(function (el) { return [el.scrollLeft, el.scrollTop]; });
    var pageY = window.scrollY;
    board.innerHTML = html;
    scrollers().forEach(function (el, i) {
      if (positions[i]) { el.scrollLeft = positions[i][0]; el.scrollTop = positions[i][1]; }
    });
    setupKeys();
    if (focusId) {
      var again = document.getElementById(focusId);
      if (again) {
        makeCurrent(again);
        again.focus({ preventScroll: true });
      } else {
        board.focus({ preventScroll: true });  // what had the focus is gone (moved, cancelled)
      }
    }
    window.scrollTo(window.scrollX, pageY);
  }

  function signedOut() {
    stopped = true;
    board.textContent = "";
    var note = document.createElement("p");
    note.className = "flash flash-info";
    note.appendChild(document.createTextNode("You were signed out after a while without use, so the board is hidden. "));
    var link = document.createElement("a");
    link.href = window.location.pathname + window.location.search;
    link.textContent = "Sign in again";
    note.appendChild(link);
    board.appendChild(note);
    say("");
  }

  function schedule(delay) {
    window.clearTimeout(timer);
    if (!stopped && document.visibilityState !== "hidden") {
      timer = window.setTimeout(poll, delay);
    }
  }

  function poll() {
    if (inFlight || stopped) { return; }
    inFlight = true;
    var headers = { "Accept": "text/html" };
    if (etag) { headers["If-None-Match"] = '"' + etag + '"'; }
    fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store", redirect: "manual" })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 401) {
          signedOut();
          return null;
        }
        if (response.status === 304) {
          failures = 0;
          say("Live · checked " + clock());
          return null;
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        var tag = response.headers.get("ETag");
        return response.text().then(function (html) {
          failures = 0;
          etag = tag ? tag.replace(/^W\//, "").replace(/"/g, "") : null;
          if (busy()) {
            waiting = html;
            say("Changes waiting: they show when you leave the form");
          } else {
            waiting = null;
            swap(html);
            say("Live · updated " + clock());
          }
        });
      })
      .catch(function () {
        failures += 1;
        say("Not connected: trying again");
      })
      .then(function () {
        inFlight = false;
        schedule(Math.min(interval * Math.pow(2, failures), 60000));
      });
  }

  function release() {
    window.setTimeout(function () {
      if (waiting !== null && !busy()) {
        var html = waiting;
        waiting = null;
        swap(html);
        say("Live · updated " + clock());
      }
    }, 0);
  }

  board.addEventListener("pointerdown", function () { pressed = true; });
  document.addEventListener("pointerup", function () { pressed = false; release(); });
  document.addEventListener("pointercancel", function () { pressed = false; release(); });
  board.addEventListener("focusout", release);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      window.clearTimeout(timer);
    } else {
      schedule(0);
    }
  });

  /* --- arrow keys: one tab stop for the grid, arrows move between cells --------------------- */

  function cells() {
    // Each cell's column and first row in the grid, from the table itself: a cell with a
    // rowspan covers its column in the rows below, so later cells of those rows sit further right.
    var found = [];
    var covered = [];
    board.querySelectorAll(".day-grid tbody tr").forEach(function (tr, row) {
      var col = 0;
      Array.prototype.forEach.call(tr.children, function (td) {
        if (td.tagName !== "TD") { return; }
        while (covered[col] > 0) { covered[col] -= 1; col += 1; }
        var span = td.rowSpan || 1;
        covered[col] = span - 1;
        var target = td.querySelector("[data-cell]");
        if (target) { found.push({ td: td, col: col, row: row, span: span, target: target }); }
        col += 1;
      });
      for (var rest = col; rest < covered.length; rest += 1) {
        if (covered[rest] > 0) { covered[rest] -= 1; }
      }
    });
    return found;
  }

  function makeCurrent(target) {
    board.querySelectorAll("[data-cell]").forEach(function (el) {
      el.setAttribute("tabindex", el === target ? "0" : "-1");
    });
  }

  function setupKeys() {
    var all = cells();
    if (!all.length) { return; }
    var current = all.find(function (cell) { return cell.target.getAttribute("tabindex") === "0"; }) || all[0];
    makeCurrent(current.target);
  }

  function move(from, key) {
    var all = cells();
    var here = all.find(function (cell) { return cell.target === from || cell.td.contains(from); });
    if (!here) { return null; }
    var candidates;
    if (key === "ArrowDown") {
      candidates = all.filter(function (c) { return c.col === here.col && c.row > here.row; });
      candidates.sort(function (a, b) { return a.row - b.row; });
    } else if (key === "ArrowUp") {
      candidates = all.filter(function (c) { return c.col === here.col && c.row < here.row; });
      candidates.sort(function (a, b) { return b.row - a.row; });
    } else {
      var step = key === "ArrowRight" ? 1 : -1;
      var last = Math.max.apply(null, all.map(function (c) { return c.col; }));
      for (var col = here.col + step; col >= 0 && col <= last; col += step) {
        var column = all.filter(function (c) { return c.col === col; });
        if (!column.length) { continue; }
        var covering = column.find(function (c) { return c.row <= here.row && here.row < c.row + c.span; });
        if (covering) { return covering.target; }
        column.sort(function (a, b) { return Math.abs(a.row - here.row) - Math.abs(b.row - here.row); });
        return column[0].target;
      }
      return null;
    }
    return candidates.length ? candidates[0].target : null;
  }

  board.addEventListener("keydown", function (event) {
    if (["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight"].indexOf(event.key) < 0) { return; }
    var from = event.target;
    if (!from.hasAttribute || !from.hasAttribute("data-cell")) { return; }
    var to = move(from, event.key);
    if (to) {
      event.preventDefault();
      makeCurrent(to);
      to.focus();
    }
  });

  /* --- drag a visit onto a free time ---------------------------------------------------------- */

  function dropTarget(event) {
    var target = event.target.closest ? event.target.closest("[data-drop]") : null;
    return target && board.contains(target) ? target : null;
  }

  function clearTargets() {
    board.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
  }

  board.addEventListener("dragstart", function (event) {
    var visit = event.target.closest ? event.target.closest("[data-move]") : null;
    if (!visit || !moveDialog) { return; }
    dragged = visit;
    visit.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", visit.getAttribute("data-move-who") || "");
  });

  board.addEventListener("dragover", function (event) {
    var target = dragged && dropTarget(event);
    if (!target) { return; }
    event.preventDefault();  // a free time takes the drop
    event.dataTransfer.dropEffect = "move";
    if (!target.classList.contains("drop-target")) {
      clearTargets();
      target.classList.add("drop-target");
    }
  });

  board.addEventListener("dragleave", function (event) {
    var target = dropTarget(event);
    if (target && !target.contains(event.relatedTarget)) { target.classList.remove("drop-target"); }
  });

  board.addEventListener("drop", function (event) {
    var target = dragged && dropTarget(event);
    if (!target) { return; }
    event.preventDefault();
    var form = moveDialog.querySelector("form");
    form.action = dragged.getAttribute("data-move");
    moveDialog.querySelector("[data-move-start]").value = target.getAttribute("data-drop");
    moveDialog.querySelector("[data-move-practitioner]").value = target.getAttribute("data-drop-practitioner");
    moveDialog.querySelector("[data-move-text]").textContent =
      (dragged.getAttribute("data-move-who") || "This visit") + " to " + target.getAttribute("data-drop-label") + "?";
    moveDialog.showModal();
  });

  board.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    dragged = null;
    clearTargets();
    release();
  });

  if (moveDialog) {
    moveDialog.querySelector("[data-move-cancel]").addEventListener("click", function () { moveDialog.close(); });
    moveDialog.addEventListener("close", release);
  }

  setupKeys();
  say("Live · updates every few seconds");
  schedule(interval);
})();
