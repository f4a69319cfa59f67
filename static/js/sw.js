/* IoTLock's service worker, served at /sw.js so its scope is the whole site: it shows the
   alerts the portal pushes (portal/services/push.py) and opens the alert's page on a click.
   It caches nothing. */
"use strict";

self.addEventListener("push", function (event) {
  var alert = {};
  try {
    alert = event.data ? event.data.json() : {};
  } catch (e) {
    alert = {summary: event.data ? event.data.text() : ""};
  }
  var body = alert.summary || "Something happened at home.";
  if (alert.household) {
    body += " (" + alert.household + ")";
  }
  event.waitUntil(self.registration.showNotification("IoTLock", {
    body: body,
    tag: alert.id || undefined,
    icon: "/static/icons/icon-192.png",
    data: {url: alert.url || "/"}
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true}).then(function (windows) {
    for (var i = 0; i < windows.length; i++) {
      if (windows[i].url === url && "focus" in windows[i]) {
        return windows[i].focus();
      }
    }
    return self.clients.openWindow(url);
  }));
});

self.addEventListener("pushsubscriptionchange", function () {
  // The browser renewed the subscription: the next visit to the devices page sends it again.
});
