"""The wallet's refund claims in flight (:mod:`.store`); the claim itself is
:mod:`ecash_tpm.wallet.refund` (issue 12, item 3; docs/protocol.md "Refunds")."""
