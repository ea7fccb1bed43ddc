// Submits the page's form at once (the SAML HTTP-POST binding); the button stays for browsers
// without script.
(function () {
  var f = document.getElementById("autosubmit");
  if (f) { f.submit(); }
})();
