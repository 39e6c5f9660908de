/* Relais pages: the little behaviour htmx does not give. No inline script anywhere (the CSP forbids it):
   charts read their data from data-chart attributes, toasts fade by themselves, the menu folds on phones. */
(function () {
  "use strict";

  function initCharts(root) {
    if (typeof window.Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.ready) return;
      canvas.dataset.ready = "1";
      var spec = JSON.parse(canvas.dataset.chart);
      var palette = ["#1f3a5f", "#c2410c", "#0f766e", "#7c3aed", "#b91c1c", "#4d7c0f"];
      spec.datasets.forEach(function (ds, i) {
        var colour = palette[i % palette.length];
        ds.borderColor = ds.borderColor || colour;
        ds.backgroundColor = ds.backgroundColor || colour;
        ds.borderDash = ds.dashed ? [6, 4] : [];
        ds.tension = 0.25;
        ds.pointRadius = 0;
      });
      new window.Chart(canvas, {
        type: spec.type || "line",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          interaction: { mode: "index", intersect: false },
          plugins: { legend: { position: "bottom" } },
          scales: { y: { beginAtZero: true } }
        }
      });
    });
  }

  function initToasts(root) {
    root.querySelectorAll(".toast:not([data-timed])").forEach(function (toast) {
      toast.dataset.timed = "1";
      setTimeout(function () { toast.classList.add("hide"); }, 5000);
      setTimeout(function () { toast.remove(); }, 5600);
    });
  }

  function initToggles(root) {
    root.querySelectorAll("[data-toggle]").forEach(function (button) {
      if (button.dataset.bound) return;
      button.dataset.bound = "1";
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.toggle);
        var open = target.classList.toggle("open");
        button.setAttribute("aria-expanded", open ? "true" : "false");
      });
    });
  }

  function initCounters(root) {
    // X counts up to 280 characters (a link counts as 23): the share text editor shows what is left.
    root.querySelectorAll("textarea[data-counter]").forEach(function (area) {
      if (area.dataset.bound) return;
      area.dataset.bound = "1";
      var out = document.getElementById(area.dataset.counter);
      var limit = parseInt(area.dataset.limit || "280", 10);
      function update() {
        var text = area.value.replace(/https?:\/\/\S+/g, "x".repeat(23));
        var left = limit - Array.from(text).length;
        out.textContent = String(left);
        out.classList.toggle("error", left < 0);
      }
      area.addEventListener("input", update);
      update();
    });
  }

  function initPreviewForms(root) {
    // The "Refresh the preview" button posts the preview form: copy the editor's values in first.
    root.querySelectorAll("form[data-copy-from]").forEach(function (form) {
      if (form.dataset.bound) return;
      form.dataset.bound = "1";
      form.addEventListener("submit", function () {
        var source = document.getElementById(form.dataset.copyFrom);
        Array.prototype.forEach.call(form.elements, function (field) {
          if (field.name && field.name !== "csrf" && source && source.elements[field.name]) {
            field.value = source.elements[field.name].value;
          }
        });
      });
    });
  }

  function initEditors(root) {
    // Line numbers beside the template editor, kept in step with its lines and its scrolling.
    root.querySelectorAll("pre[data-gutter-for]").forEach(function (gutter) {
      var area = document.getElementById(gutter.dataset.gutterFor);
      if (!area || area.dataset.bound) return;
      area.dataset.bound = "1";
      function number() {
        var lines = area.value.split("\n").length, out = [];
        for (var i = 1; i <= lines; i++) out.push(i);
        gutter.textContent = out.join("\n");
      }
      area.addEventListener("input", number);
      area.addEventListener("scroll", function () { gutter.scrollTop = area.scrollTop; });
      number();
    });
    // A fragment that says the preview is stale posts the preview form into its frame, with the editor's
    // current values copied in (a separate form: htmx would otherwise reuse a clicked button's formaction).
    root.querySelectorAll("[data-refresh-preview]").forEach(function (marker) {
      var form = document.getElementById(marker.dataset.refreshPreview);
      marker.remove();
      if (!form) return;
      var source = document.getElementById(form.dataset.copyFrom);
      Array.prototype.forEach.call(form.elements, function (field) {
        if (field.name === "csrf" || !source || !source.elements[field.name]) return;
        field.value = source.elements[field.name].value;
      });
      form.submit();
    });
  }

  // A page that only confirms a choice and goes on (the charter accepted, then the share): a form's redirect
  // may not leave the site (CSP form-action), so the page follows its own link; the link stays for no-JS.
  function initContinue(root) {
    var link = root.querySelector("a[data-continue]");
    if (link) window.location.replace(link.href);
  }

  // "Copy signature": the rich HTML on the clipboard (text/plain beside it for plain-text editors); where
  // ClipboardItem is missing, the text alone. The button says what happened in its status element.
  function initCopyButtons(root) {
    root.querySelectorAll("button[data-copy-html]:not([data-copy-ready])").forEach(function (button) {
      button.dataset.copyReady = "1"; // init runs again for each htmx swap: one listener per button
      button.addEventListener("click", function () {
        var status = document.getElementById(button.dataset.copyStatus);
        var html = button.dataset.copyHtml, text = button.dataset.copyText || "";
        var say = function (ok) { if (status) status.textContent = ok ? button.dataset.copyDone : button.dataset.copyFailed; };
        if (!navigator.clipboard) { say(false); return; }
        var done;
        if (window.ClipboardItem) {
          done = navigator.clipboard.write([new ClipboardItem({
            "text/html": new Blob([html], { type: "text/html" }),
            "text/plain": new Blob([text], { type: "text/plain" })
          })]);
        } else {
          done = navigator.clipboard.writeText(text);
        }
        done.then(function () { say(true); }, function () { say(false); });
      });
    });
  }

  function initCopyText(root) {
    // Share center: a button copies the text of the field it names (data-copy-field="<id>") and says so.
    root.querySelectorAll("button[data-copy-field]").forEach(function (button) {
      if (button.dataset.bound) return;
      button.dataset.bound = "1";
      button.addEventListener("click", function () {
        var field = document.getElementById(button.dataset.copyField);
        if (!field) return;
        var status = document.getElementById("copy-status");
        function done() {
          button.dataset.state = "copied";
          if (status) status.textContent = button.dataset.copied || "";
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(done, function () {
            field.select();
          });
        } else {
          field.select();
          if (document.execCommand("copy")) done();
        }
      });
    });
  }

  function init(root) {
    initContinue(root);
    initCopyButtons(root);
    initCopyText(root);
    initPreviewForms(root);
    initEditors(root);
    initCharts(root);
    initToasts(root);
    initToggles(root);
    initCounters(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    if (window.htmx) window.htmx.onLoad(init);
  });
})();
