// The donation form: the card field is Stripe.js's card element (the card never touches our
// servers); on submit the card becomes a token, put in the form's card_token field, and the
// form is posted as usual. Everything else in the form works without JavaScript.
(function () {
  var form = document.getElementById('give');
  if (!form || typeof Stripe !== 'function') return;
  var stripe = Stripe(form.getAttribute('data-stripe-key'), { stripeAccount: form.getAttribute('data-stripe-account') });
  var card = stripe.elements().create('card');
  card.mount('#card-element');
  var errors = document.getElementById('card-errors');
  var bps = parseInt(form.getAttribute('data-fee-bps') || '0', 10);
  var note = document.getElementById('fee-amount');
  // Minor units per major unit: 100 for USD, 1 for JPY, 1000 for KWD (ISO 4217).
  var exponent = parseInt(form.getAttribute('data-exponent') || '2', 10);
  var scale = Math.pow(10, exponent);
  var amountOf = function () {
    var other = form.querySelector('input[name=amount]').value.trim();
    if (other) { var v = Math.round(parseFloat(other) * scale); return isNaN(v) ? 0 : v; }
    var p = form.querySelector('input[name=preset]:checked');
    return p ? parseInt(p.value, 10) : 0;
  };
  var update = function () {
    if (!note) return;
    var fee = Math.floor(amountOf() * bps / 10000);
    note.textContent = (fee / scale).toFixed(exponent);
  };
  form.addEventListener('input', update);
  update();
  var sending = false;
  form.addEventListener('submit', function (ev) {
    if (form.querySelector('input[name=card_token]').value) return;
    ev.preventDefault();
    if (sending) return;
    sending = true;
    stripe.createToken(card).then(function (r) {
      sending = false;
      if (r.error) { errors.textContent = r.error.message || 'Your card was not accepted.'; return; }
      errors.textContent = '';
      form.querySelector('input[name=card_token]').value = r.token.id;
      form.submit();
    });
  });
})();
