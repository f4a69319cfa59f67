/* The virtual box's keypad (templates/mailboxes/_keypad.html).

   Digit and C keys type into the display here, in the page: no request per press, so
   presses of any speed all count. Enter sends what was typed as one entry (htmx posts the
   form, hx-sync drops a second Enter while one is on its way). Presses made while that
   entry travels are kept and typed into the keypad that comes back. Without this script
   the same buttons are plain submit buttons and the server types (the page reloads). */
(function () {
  "use strict";
  if (window.iotlockKeypad) {
    return; // loaded again by an htmx swap: the listeners below are on the document already
  }
  window.iotlockKeypad = true;

  var MAX = 8;
  var carried = "";

  function display(form) {
    return form ? form.querySelector("input[name=digits]") : null;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".keypad-form button[name=key]") : null;
    if (!button || button.value === "enter") {
      return; // Enter submits the form (htmx, or a plain post)
    }
    var input = display(button.form);
    if (!input) {
      return;
    }
    event.preventDefault(); // typed here: nothing is sent
    if (button.value === "clear") {
      input.value = "";
    } else if (input.value.length < MAX) {
      input.value += button.value;
    }
  });

  // The entry is on its way: the display starts empty for the next one.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var input = display(event.detail.elt);
    if (input && event.detail.elt.classList.contains("keypad-form")) {
      input.value = "";
    }
  });

  // Digits pressed while it travelled survive the swap of the keypad.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "keypad") {
      var input = target.querySelector("input[name=digits]");
      carried = input ? input.value : "";
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (!carried) {
      return;
    }
    var input = document.querySelector("#keypad input[name=digits]");
    if (input && !input.value) {
      input.value = carried;
    }
    carried = "";
  });
})();
