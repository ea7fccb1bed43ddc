// Inside the DingTalk app: ask the container for a free-login code (dd.requestAuthCode) and return
// it to the gateway's callback, which carries the state bound to this browser. What it says comes
// from the page's data attributes, in the page's language.
(function () {
  var el = document.getElementById("dd-login");
  var status = document.getElementById("status");
  if (!el) { return; }
  function go(code) {
    window.location.replace(el.dataset.callback + "&code=" + encodeURIComponent(code));
  }
  if (typeof dd === "undefined" || !dd.ready) {
    status.textContent = status.dataset.noApp;
    return;
  }
  dd.ready(function () {
    var done = function (r) { go(r.code); };
    var fail = function () { status.textContent = status.dataset.noCode; };
    if (dd.requestAuthCode) {
      dd.requestAuthCode({ corpId: el.dataset.corpId, clientId: el.dataset.clientId, onSuccess: done, onFail: fail });
    } else {
      dd.runtime.permission.requestAuthCode({ corpId: el.dataset.corpId, onSuccess: done, onFail: fail });
    }
  });
})();
