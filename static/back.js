// A "back" or "cancel" link marked data-back goes back in the browser's history — to the app that
// sent the person here — when there is history; without it (a new tab) it follows its href.
(function () {
  var links = document.querySelectorAll("a[data-back]");
  for (var i = 0; i < links.length; i++) {
    links[i].addEventListener("click", function (e) {
      if (window.history.length > 1) {
        e.preventDefault();
        window.history.back();
      }
    });
  }
})();
