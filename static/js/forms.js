/* Small helpers for forms; every page works without them.

   - A new household's time zone: the browser's own, filled into the hidden field of the
     registration form (without JavaScript the household starts on UTC and can change it).
   - The add-PIN form: "Add another window" shows the next empty window row.
   - Copy buttons (data-copy="<id>"): copy that element's text, say so on the button. */
(function () {
  "use strict";
  if (window.iotlockForms) {
    return; // loaded again by an htmx swap: the listeners are on the document already
  }
  window.iotlockForms = true;

  function fillZones(root) {
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      zone = "";
    }
    root.querySelectorAll("input[data-browser-zone]").forEach(function (input) {
      if (!input.value && zone) {
        input.value = zone;
      }
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target : null;
    if (!target) {
      return;
    }
    var more = target.closest("[data-more-windows]");
    if (more) {
      event.preventDefault();
      var next = more.form ? more.form.querySelector(".window-row[hidden]") : null;
      if (next) {
        next.hidden = false;
        var first = next.querySelector("input");
        if (first) {
          first.focus();
        }
      }
      if (!more.form || !more.form.querySelector(".window-row[hidden]")) {
        more.hidden = true;
      }
      return;
    }
    var copy = target.closest("[data-copy]");
    if (copy) {
      event.preventDefault();
      var source = document.getElementById(copy.getAttribute("data-copy"));
      if (!source) {
        return;
      }
      var text = source.innerText.trim();
      var done = function () {
        copy.textContent = "Copied";
        window.setTimeout(function () { copy.textContent = copy.getAttribute("data-label") || "Copy"; }, 2000);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () {});
      } else {
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    }
  });

  // A select marked data-autosubmit sends its form when changed (the form's own button
  // does the same without JavaScript).
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("select[data-autosubmit]") && select.form) {
      select.form.requestSubmit ? select.form.requestSubmit() : select.form.submit();
    }
  });

  fillZones(document);
  document.addEventListener("htmx:afterSwap", function (event) {
    fillZones(event.target);
  });
})();
