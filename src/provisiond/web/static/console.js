// The console works without JavaScript; this only adds the activity log's live tail.
(function () {
  "use strict";
  var box = document.getElementById("live-tail");
  if (!box) return;
  var timer = null;
  var status = document.getElementById("tail-status");

  function poll() {
    var url = box.dataset.tailUrl + (box.dataset.tailUrl.indexOf("?") < 0 ? "?" : "&") + "after=" + box.dataset.newest;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        var newest = response.headers.get("X-Newest-Event");
        return response.text().then(function (html) { return [newest, html]; });
      })
      .then(function (result) {
        var rows = document.getElementById("event-rows");
        if (result[0]) box.dataset.newest = result[0];
        if (!rows || !result[1].trim()) return;
        var holder = document.createElement("tbody");
        holder.innerHTML = result[1];
        var added = holder.querySelectorAll("tr");
        for (var i = added.length - 1; i >= 0; i--) {
          added[i].classList.add("fresh");
          rows.insertBefore(added[i], rows.firstChild);
        }
        rows.closest("table").hidden = false;
        if (status) status.textContent = added.length + " new event(s)";
      })
      .catch(function () { if (status) status.textContent = "live tail paused: the server did not answer"; });
  }

  box.addEventListener("change", function () {
    if (box.checked) { poll(); timer = window.setInterval(poll, 2000); }
    else if (timer) { window.clearInterval(timer); timer = null; }
  });
})();
