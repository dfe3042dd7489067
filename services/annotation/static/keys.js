// Keyboard shortcuts for the annotation page. Any element with data-key="<key>" is
// activated by that key (radio: checked, checkbox: toggled, button: clicked), unless the
// focus is in a text field. Enter submits the label form (Ctrl+Enter inside a text field).
(function () {
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" ||
      (tag === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(el.type));
  }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.metaKey) return;
    var form = document.querySelector("form[data-label-form]");
    if (e.key === "Enter" && form && (!typing(e.target) || e.ctrlKey)) {
      e.preventDefault();
      form.requestSubmit();
      return;
    }
    if (e.key === "Escape" && typing(e.target)) { e.target.blur(); return; }
    if (typing(e.target) || e.ctrlKey) return;
    var el = document.querySelector('[data-key="' + CSS.escape(e.key.toLowerCase()) + '"]');
    if (!el) return;
    e.preventDefault();
    if (el.type === "checkbox") el.checked = !el.checked;
    else if (el.type === "radio") { el.checked = true; el.focus(); }
    else el.click();
  });
  // Lease countdown.
  var left = document.querySelector("[data-expires-in]");
  if (left) {
    var end = Date.now() + parseFloat(left.dataset.expiresIn) * 1000;
    setInterval(function () {
      var s = Math.max(0, Math.round((end - Date.now()) / 1000));
      left.textContent = s + " s";
      if (s === 0) left.classList.add("error");
    }, 1000);
  }
})();
