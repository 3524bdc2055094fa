// Progressive enhancement only: every page works without JavaScript.
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.matches || !box.matches("[data-select-all]")) { return; }
  var name = box.getAttribute("data-select-all");
  var form = box.closest("form");
  form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (c) {
    c.checked = box.checked;
  });
});
