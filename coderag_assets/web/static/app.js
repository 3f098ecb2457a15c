// CodeRAG page behaviour: keyboard use, line marking from #L10-L20, live status strip.
// No framework, no build step, nothing fetched but this server's own /api/status.
(function () {
  "use strict";

  function results() { return Array.prototype.slice.call(document.querySelectorAll(".result[data-href]")); }
  var selected = -1;

  function select(index) {
    var items = results();
    if (!items.length) return;
    selected = Math.max(0, Math.min(items.length - 1, index));
    items.forEach(function (item, i) { item.classList.toggle("selected", i === selected); });
    items[selected].focus({ preventScroll: true });
    items[selected].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA");
    if (event.key === "/" && !typing) {
      event.preventDefault();
      var box = document.getElementById("q");
      box.focus();
      box.select();
      return;
    }
    if (event.key === "Escape" && typing) { target.blur(); return; }
    if (typing) {
      if (event.key === "ArrowDown" && target.id === "q" && results().length) { event.preventDefault(); target.blur(); select(0); }
      return;
    }
    if (event.key === "ArrowDown" || event.key === "j") { event.preventDefault(); select(selected + 1); }
    else if (event.key === "ArrowUp" || event.key === "k") { event.preventDefault(); select(selected - 1); }
    else if (event.key === "Enter" && selected >= 0) { event.preventDefault(); window.location.href = results()[selected].dataset.href; }
  });

  document.addEventListener("click", function (event) {
    var item = event.target.closest && event.target.closest(".result[data-href]");
    if (item && !event.target.closest("a")) { window.location.href = item.dataset.href; }
  });

  // ------------------------------------------------------------ file view: #L10 or #L10-L20
  function markFragment() {
    var code = document.getElementById("code");
    if (!code) return;
    var match = /^#L(\d+)(?:-L?(\d+))?$/.exec(window.location.hash);
    Array.prototype.forEach.call(code.querySelectorAll(".ln.picked"), function (line) { line.classList.remove("picked"); });
    var first, last;
    if (match) {
      first = parseInt(match[1], 10);
      last = match[2] ? parseInt(match[2], 10) : first;
      if (last < first) { var swap = first; first = last; last = swap; }
      for (var n = first; n <= last; n++) {
        var line = document.getElementById("L" + n);
        if (line) line.classList.add("picked");
      }
    }
    var target = match ? document.getElementById("L" + first) : code.querySelector(".ln.hit");
    if (target) target.scrollIntoView({ block: "center" });
  }
  var anchor = null;
  document.addEventListener("click", function (event) {
    var number = event.target.closest && event.target.closest("#code a.num");
    if (!number) return;
    var line = parseInt(number.textContent, 10);
    if (event.shiftKey && anchor !== null) {
      event.preventDefault();
      var a = Math.min(anchor, line), b = Math.max(anchor, line);
      history.replaceState(null, "", "#L" + a + "-L" + b);
      markFragment();
    } else {
      anchor = line;
    }
  });
  window.addEventListener("hashchange", markFragment);
  document.addEventListener("DOMContentLoaded", markFragment);

  // ------------------------------------------------------------ status strip
  function age(seconds) {
    if (seconds < 60) return Math.round(seconds) + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h ago";
    return (seconds / 86400).toFixed(1) + " d ago";
  }
  function showAge() {
    var published = document.getElementById("st-published");
    if (published && published.dataset.ts) {
      var ts = parseFloat(published.dataset.ts);
      published.textContent = age(Date.now() / 1000 - ts);
      published.title = new Date(ts * 1000).toLocaleString();
    }
  }
  function refreshStatus() {
    fetch("/api/status", { credentials: "same-origin" }).then(function (response) {
      return response.json();
    }).then(function (status) {
      var strip = document.getElementById("status");
      if (!strip || !status || status.code) return;
      if (String(status.version) !== strip.dataset.version && strip.dataset.version === "") { window.location.reload(); return; }
      strip.dataset.version = status.version;
      var set = function (id, text) { var node = document.getElementById(id); if (node) node.textContent = text; };
      set("st-version", status.version);
      set("st-chunks", status.chunks);
      var published = document.getElementById("st-published");
      if (published) published.dataset.ts = status.published_at;
      var fresh = document.getElementById("st-fresh");
      if (fresh && status.freshness) {
        fresh.textContent = status.freshness.summary;
        fresh.className = status.freshness.up_to_date ? "fresh" : "stale";
      }
      showAge();
    }).catch(function () { /* the server is restarting or gone: keep the last strip */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    showAge();
    setInterval(refreshStatus, 5000);
  });
})();
