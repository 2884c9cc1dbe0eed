"""The outbox engine: every message sent once, even when a worker is killed mid-send.

The outbox row is the only record of a message, and every change of its status is one of the
conditional UPDATEs of :mod:`.transitions` (read its table first), checked on its rowcount.
A send is four committed steps, and no transaction is open while the provider is called:

1. :mod:`.claim`: ``pending`` and due -> ``sending`` under a lease, ``attempts + 1``. The
   triple (row, worker, attempt) is the attempt's *fencing token*: every later write needs it.
2. :mod:`.prepare`: re-check the row is still wanted (skip, defer or go), render it, commit
   the exact ``to`` and ``body`` about to be sent. From here the row says what may be out.
3. :mod:`.send`: one transport call, its timeout under a third of the lease.
4. :mod:`.record`: ``sent`` with the provider's id, or retry (:mod:`.retry`), or fail
   (:mod:`.failures` reacts to an opt-out or a bad number), fenced by the token.

A worker that dies leaves ``sending`` rows; once their lease is over :mod:`.reconcile` (the
reaper) decides. Before the prepare commit nothing can have been sent; after it, a text is
looked up at the provider (same number and body since the claim, not another row's): found ->
recorded, never resent; not found -> ``pending`` again. E-mail cannot be asked, so it is resent
with the same Message-ID. A send that timed out (the provider may have it) is left to the
reaper too. Delivery reports go through :mod:`.provider_status`, forward only; one that
arrives before its row holds the id is stored and applied later, never dropped.

Limits: reconciliation trusts the provider's list to show a message within the reaper's delay,
and compares bodies exactly (or up to whitespace), so a provider-side rewrite of the body
(Twilio's Smart Encoding) would defeat it and cause a resend. An e-mail duplicate is possible
when the SMTP server accepted it and the worker died before the record commit.
"""
