// Progressive enhancement only: every page works without it.
// Copy buttons: <button data-copy="text">.
document.addEventListener('click', function (ev) {
  var b = ev.target.closest('button[data-copy]');
  if (!b) return;
  ev.preventDefault();
  var text = b.getAttribute('data-copy');
  var done = function () { b.textContent = 'Copied'; setTimeout(function () { b.textContent = 'Copy'; }, 1500); };
  if (navigator.clipboard) { navigator.clipboard.writeText(text).then(done, function () {}); }
});
