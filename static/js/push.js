/* Alerts on this device (templates/push/devices.html): register the service worker (/sw.js),
   subscribe with the portal's VAPID public key and send the subscription to the portal, or
   turn it off again. The page works without it: the device list and "Remove" are forms. */
(function () {
  "use strict";
  var box = document.querySelector("[data-push]");
  if (!box) {
    return;
  }
  var status = box.querySelector("[data-push-status]");
  var onButton = box.querySelector("[data-push-on]");
  var offButton = box.querySelector("[data-push-off]");
  var csrf = "";
  try {
    csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch (e) {
    csrf = "";
  }

  function say(text) {
    status.textContent = text;
  }

  function serverKey() {
    var text = box.getAttribute("data-server-key").replace(/-/g, "+").replace(/_/g, "/");
    text += "===".slice((text.length + 3) % 4);
    var raw = window.atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (answer) {
          throw new Error(answer.error || "The portal did not take it (" + response.status + ").");
        });
      }
      return response;
    });
  }

  function show(subscription) {
    var endpoint = subscription ? subscription.endpoint : null;
    onButton.hidden = !!subscription;
    offButton.hidden = !subscription;
    say(subscription ? "This browser gets alerts." : "This browser does not get alerts.");
    document.querySelectorAll("tr[data-endpoint]").forEach(function (row) {
      var mark = row.querySelector("[data-this-browser]");
      if (mark) {
        mark.hidden = row.getAttribute("data-endpoint") !== endpoint;
      }
    });
  }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("This browser cannot take push alerts.");
    return;
  }

  var ready = navigator.serviceWorker.register(box.getAttribute("data-worker-url"), {scope: "/"})
    .then(function () { return navigator.serviceWorker.ready; });

  ready.then(function (registration) {
    return registration.pushManager.getSubscription();
  }).then(function (subscription) {
    if (subscription) {
      // Tell the portal again: it may have forgotten it (removed, or another user's before).
      return post(box.getAttribute("data-subscribe-url"), subscription.toJSON()).then(function () {
        show(subscription);
      });
    }
    show(null);
  }).catch(function (error) {
    say(error.message || "Alerts on this device could not be checked.");
    onButton.hidden = false;
  });

  onButton.addEventListener("click", function () {
    onButton.disabled = true;
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") {
        throw new Error("This browser blocks notifications from IoTLock: allow them in its settings first.");
      }
      return ready;
    }).then(function (registration) {
      return registration.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: serverKey()});
    }).then(function (subscription) {
      return post(box.getAttribute("data-subscribe-url"), subscription.toJSON()).then(function () {
        window.location.reload();
      });
    }).catch(function (error) {
      say(error.message || "Alerts could not be turned on.");
    }).then(function () {
      onButton.disabled = false;
    });
  });

  offButton.addEventListener("click", function () {
    offButton.disabled = true;
    ready.then(function (registration) {
      return registration.pushManager.getSubscription();
    }).then(function (subscription) {
      if (!subscription) {
        return null;
      }
      return post(box.getAttribute("data-unsubscribe-url"), {endpoint: subscription.endpoint}).then(function () {
        return subscription.unsubscribe();
      });
    }).then(function () {
      window.location.reload();
    }).catch(function (error) {
      say(error.message || "Alerts could not be turned off.");
      offButton.disabled = false;
    });
  });
})();
