// Follows a running run: task states and log lines arrive over Server-Sent Events, pushed
// by the daemon when the store changes (no polling). The stream ends when the run does.
(function () {
  "use strict";
  var timeline = document.getElementById("timeline");
  if (!timeline || !timeline.dataset.live || !window.EventSource) { return; }
  var stageLabel = timeline.dataset.labelStage || "Stage";
  var cls = function (s) {
    switch (s) {
      case "succeeded": case "healthy": case "applied": return "ok";
      case "failed": case "timed_out": case "approval_timed_out": case "interrupted": return "bad";
      case "running": case "queued": return "live";
      case "awaiting_approval": case "awaiting_window": case "pending": return "wait";
    }
    return "off";
  };
  var find = function (sel, attr, value) {
    var all = document.querySelectorAll(sel);
    for (var i = 0; i < all.length; i++) { if (all[i].getAttribute(attr) === value) { return all[i]; } }
    return null;
  };
  var el = function (tag, className, text) {
    var e = document.createElement(tag);
    if (className) { e.className = className; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  };
  // taskBox returns the task's block, making it (and its stage) when the run adds it.
  var taskBox = function (stage, name) {
    var box = find("#timeline .task", "data-task", name);
    if (box) { return box; }
    var st = find("#timeline .stage", "data-stage", stage);
    if (!st) {
      st = el("section", "stage");
      st.setAttribute("data-stage", stage);
      st.appendChild(el("h2", "", stageLabel + " · " + stage));
      timeline.appendChild(st);
    }
    box = el("details", "task");
    box.open = true;
    box.setAttribute("data-task", name);
    var sum = el("summary");
    var badge = el("span", "badge");
    badge.setAttribute("data-role", "status");
    sum.appendChild(badge);
    sum.appendChild(document.createTextNode(" "));
    sum.appendChild(el("strong", "", name));
    sum.appendChild(document.createTextNode(" "));
    var dur = el("span");
    dur.setAttribute("data-role", "duration");
    sum.appendChild(dur);
    box.appendChild(sum);
    var reason = el("p", "reason");
    reason.setAttribute("data-role", "reason");
    box.appendChild(reason);
    box.appendChild(el("pre", "log"));
    st.appendChild(box);
    return box;
  };
  var src = new EventSource(timeline.dataset.live);
  src.addEventListener("tasks", function (ev) {
    JSON.parse(ev.data).forEach(function (t) {
      var box = taskBox(t.stage, t.name);
      var badge = box.querySelector("[data-role=status]");
      badge.className = "badge " + cls(t.status);
      badge.textContent = t.label;
      badge.setAttribute("data-status", t.status);
      box.querySelector("[data-role=duration]").textContent = t.duration || "";
      box.querySelector("[data-role=reason]").textContent = t.reason || "";
    });
  });
  src.addEventListener("logs", function (ev) {
    JSON.parse(ev.data).forEach(function (l) {
      var box = l.task === "" ? find("#timeline .task", "data-task", "") : taskBox("", l.task);
      if (!box) {
        box = el("section", "task");
        box.setAttribute("data-task", "");
        box.appendChild(el("pre", "log"));
        timeline.insertBefore(box, timeline.firstChild);
      }
      var pre = box.querySelector("pre.log");
      var follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(el("span", l.stream, l.text));
      pre.appendChild(document.createTextNode("\n"));
      if (follow) { pre.scrollTop = pre.scrollHeight; }
    });
  });
  src.addEventListener("run", function (ev) {
    var r = JSON.parse(ev.data);
    var badge = document.getElementById("run-status");
    badge.className = "badge " + cls(r.status);
    badge.textContent = r.label;
    badge.setAttribute("data-status", r.status);
    document.getElementById("run-duration").textContent = r.duration || "";
    document.getElementById("run-reason").textContent = r.reason || "";
    if (r.status === "awaiting_approval" && timeline.dataset.mayAnswer === "true" && !document.getElementById("answer")) {
      // The approve form is rendered by the server, for those allowed: fetch it anew.
      src.close();
      window.location.reload();
    }
  });
  src.addEventListener("end", function () { src.close(); timeline.setAttribute("data-ended", "true"); });
})();
