// 3-D Secure: the card's bank asked the donor to confirm a payment that the server has already
// confirmed (its status is `requires_action`). Stripe.js shows the bank's challenge for the
// PaymentIntent's client secret; once the bank says yes the donor goes on to the thank-you page,
// where the gift shows as received while Stripe's webhook settles it. Stripe.js's
// confirmCardPayment with only the client secret runs the pending next action (the emulator's
// fake Stripe.js implements exactly this step).
(function () {
  var box = document.getElementById('confirm');
  if (!box || typeof Stripe !== 'function') return;
  var stripe = Stripe(box.getAttribute('data-stripe-key'), { stripeAccount: box.getAttribute('data-stripe-account') });
  var status = document.getElementById('confirm-status');
  var button = document.getElementById('confirm-button');
  var busy = false;
  var go = function () {
    if (busy) return;
    busy = true;
    button.disabled = true;
    status.textContent = 'Waiting for your bank…';
    stripe.confirmCardPayment(box.getAttribute('data-client-secret')).then(function (r) {
      busy = false;
      if (r.error || !r.paymentIntent || r.paymentIntent.status === 'requires_payment_method') {
        button.disabled = false;
        status.textContent = ((r.error && r.error.message) || 'Your bank did not confirm the payment.') +
          ' Nothing was charged. You can try again, or go back and use another card.';
        return;
      }
      window.location.assign(box.getAttribute('data-next'));
    });
  };
  button.addEventListener('click', go);
  button.hidden = false;
  go();
})();
