// suanli dashboard: periodic refresh of server-rendered fragments and a live log tail.
// No libraries; same-origin fetches only (the session cookie is HttpOnly + SameSite=Strict).
"use strict";
(function () {
  function refresh(el) {
    var url = el.getAttribute("data-refresh");
    var every = parseInt(el.getAttribute("data-interval") || "2000", 10);
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); throw new Error("logged out"); }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html === null) { setTimeout(tick, every * 2); return; }
          el.innerHTML = html;
          if (el.querySelector("[data-terminal]")) {
            var c = document.getElementById("cancel-form");
            if (c) c.remove();
            return; // finished: nothing more will change
          }
          setTimeout(tick, every);
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }

  function tail(pre) {
    var base = pre.getAttribute("data-logs");
    var status = document.getElementById("log-status");
    var stream = "stdout", offset = 0, gen = 0;
    function poll(g) {
      if (g !== gen) return;
      fetch(base + "?stream=" + stream + "&offset=" + offset, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (c) {
          if (g !== gen) return;
          if (c.data) {
            var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.appendChild(document.createTextNode(c.data));
            if (atEnd) pre.scrollTop = pre.scrollHeight;
          }
          offset = c.offset;
          if (status) status.textContent = c.eof ? "(" + c.state + ", end of log)" : "(" + c.state + ", following…)";
          pre.setAttribute("data-eof", c.eof ? "1" : "0");
          if (!c.eof) setTimeout(function () { poll(g); }, c.data ? 300 : 1000);
        })
        .catch(function () { setTimeout(function () { poll(g); }, 3000); });
    }
    document.querySelectorAll("input[name=stream]").forEach(function (r) {
      r.addEventListener("change", function () {
        stream = r.value; offset = 0; gen += 1; pre.textContent = ""; poll(gen);
      });
    });
    poll(gen);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
    var pre = document.getElementById("log");
    if (pre) tail(pre);
  });
})();
